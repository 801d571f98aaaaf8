// A real browser for the web UI's tests: Debian's chromium driven by playwright-core
// (which never downloads a browser), headless, sandbox off (tests run as root in CI),
// no network of its own beyond the pages it is sent to, a fresh profile each time.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import { TOOLS } from './images.js';

export interface TestBrowser {
  context: BrowserContext;
  close(): Promise<void>;
}

export async function launchChromium(options: { javaScriptEnabled?: boolean } = {}): Promise<TestBrowser> {
  const profile = await mkdtemp(join(tmpdir(), 'berth-chromium-'));
  // launchPersistentContext passes the empty profile as --user-data-dir.
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: TOOLS.chromium,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 800 },
    javaScriptEnabled: options.javaScriptEnabled ?? true,
  });
  return {
    context,
    async close() {
      await context.close();
      await rm(profile, { recursive: true, force: true });
    },
  };
}
