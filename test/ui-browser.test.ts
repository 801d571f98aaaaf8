// The web UI in a real browser (Debian's chromium through playwright-core) against a
// real server with --auth basic, with real images pushed by skopeo: umoci-built busybox
// images, a multi-platform index and a referrer. Screenshots of the main pages go to
// test-output/screenshots/ (kept out of git).

import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createUser } from '../auth/accounts.js';
import { launchChromium, type TestBrowser } from './helpers/browser.js';
import { buildBusyboxImage, buildMultiPlatformIndex, e2eTools, skopeo, tempDir } from './helpers/images.js';
import { sha256, startTestServer, type TestServer } from './helpers/server.js';

const SCREENSHOTS = join(import.meta.dirname, '..', 'test-output', 'screenshots');
const EVIL_LABEL = '<script>document.title="owned";alert(1)</script>';
const ROOT = ['root', 'root-password'] as const;
const BOB = ['bob', 'bob-password'] as const;

const basic = ([user, password]: readonly [string, string]) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

describe.skipIf(!e2eTools('umoci', 'skopeo', 'busybox', 'chromium'))('web UI in chromium', () => {
  let srv: TestServer;
  let browser: TestBrowser;
  let page: Page;
  let host: string;
  let work: string;
  const dialogs: string[] = [];

  async function push(layoutRef: string, ref: string, all = false): Promise<void> {
    await skopeo('copy', '--quiet', ...(all ? ['--all'] : []), '--dest-tls-verify=false', '--dest-creds', ROOT.join(':'), layoutRef, `docker://${host}/${ref}`);
  }

  async function api(path: string, init: RequestInit = {}): Promise<Response> {
    return fetch(`${srv.url}${path}`, { ...init, headers: { authorization: basic(ROOT), ...(init.headers as Record<string, string>) } });
  }

  async function signIn(user: readonly [string, string]): Promise<void> {
    await page.goto(`${srv.url}/-/login`);
    await page.fill('input[name=username]', user[0]);
    await page.fill('input[name=password]', user[1]);
    await page.click('button[type=submit]');
  }

  async function shot(name: string): Promise<void> {
    await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
  }

  beforeAll(async () => {
    await mkdir(SCREENSHOTS, { recursive: true });
    srv = await startTestServer({
      auth: { mode: 'basic', rules: [{ users: ['bob'], repositories: ['private/**'], actions: [] }] },
    });
    host = new URL(srv.url).host;
    const users = srv.registry.users;
    await createUser(users, { name: ROOT[0], password: ROOT[1], admin: true, groups: [] });
    await createUser(users, { name: BOB[0], password: BOB[1], admin: false, groups: [] });

    work = await tempDir('berth-ui-browser-');
    const app = await buildBusyboxImage(join(work, 'app'), {
      tag: '1.0',
      extraFiles: { 'etc/app.conf': 'debug = false\n'.repeat(200) },
      labels: { 'org.opencontainers.image.title': 'demo app', note: EVIL_LABEL },
      cmd: ['/bin/busybox', 'httpd', '-f'],
    });
    await push(app.skopeoRef, 'demo/app:1.0');
    await push(app.skopeoRef, 'demo/app:latest');
    await push(app.skopeoRef, 'demo/app:old');
    const multi = await buildMultiPlatformIndex(join(work, 'multi'), { tag: 'multi' });
    await push(multi.skopeoRef, 'demo/multi:2.0', true);
    const secret = await buildBusyboxImage(join(work, 'secret'), { tag: 'v1' });
    await push(secret.skopeoRef, 'private/secret:v1');

    // A signature referring to demo/app:1.0.
    const empty = Buffer.from('{}');
    expect((await api(`/v2/demo/app/blobs/uploads/?digest=${sha256(empty)}`, { method: 'POST', body: empty })).status).toBe(201);
    const signature = Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      artifactType: 'application/vnd.dev.cosign.artifact.sig.v1+json',
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256(empty), size: 2 },
      layers: [{ mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256(empty), size: 2 }],
      subject: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: app.digest, size: app.raw.length },
    }));
    const put = await api(`/v2/demo/app/manifests/${sha256(signature)}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
      body: signature,
    });
    expect(put.status).toBe(201);

    browser = await launchChromium();
    await browser.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: srv.url });
    page = await browser.context.newPage();
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.accept();
    });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await srv?.destroy();
  });

  it('a wrong password fails; the right one shows only the repositories the user may pull', async () => {
    await page.goto(srv.url);
    expect(await page.locator('#repositories tbody tr').count()).toBe(0);
    await signIn(['bob', 'wrong-password']);
    await expect.poll(() => page.locator('#login-error').textContent()).toBe('Wrong user name or password.');
    await shot('sign-in');
    await signIn(BOB);
    await page.waitForURL(`${srv.url}/`);
    expect(await page.locator('#signed-in-user').textContent()).toBe('bob');
    expect(await page.locator('#repositories tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-name')))).toEqual(['demo/app', 'demo/multi']);
    await page.goto(`${srv.url}/r/private/secret`);
    expect(await page.locator('h1').textContent()).toBe('Not found');
    expect(await page.content()).not.toContain('private/secret');
    await page.goto(srv.url);
    await page.click('text=Sign out');
    await page.waitForURL(`${srv.url}/`);
    expect(await page.locator('a[href="/-/login"]').count()).toBe(1);
    await signIn(ROOT);
    await page.waitForURL(`${srv.url}/`);
    expect(await page.locator('#repositories tbody tr').count()).toBe(3);
  });

  it('lists the pushed repositories; search filters them', async () => {
    await page.goto(srv.url);
    const names = () => page.locator('#repositories tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-name')));
    expect(await names()).toEqual(['demo/app', 'demo/multi', 'private/secret']);
    const appRow = page.locator('#repositories tr[data-name="demo/app"] td');
    expect(await appRow.nth(1).textContent()).toBe('3');
    await shot('repositories');
    await page.fill('#q', 'multi');
    await page.press('#q', 'Enter');
    await page.waitForURL(/q=multi/);
    expect(await names()).toEqual(['demo/multi']);
  });

  it('the tag page of an index shows both platforms', async () => {
    await page.goto(`${srv.url}/r/demo/multi`);
    const platforms = await page.locator('#tags tr[data-name="2.0"] .platforms .tag').allTextContents();
    expect(platforms).toEqual(['linux/amd64', 'linux/arm64']);
    await page.click('#tags a:text-is("2.0")');
    expect(await page.locator('#children .platform').allTextContents()).toEqual(['linux/amd64', 'linux/arm64']);
  });

  it('layer sizes add up to the manifest\'s; a <script> label is shown as text', async () => {
    await page.goto(`${srv.url}/r/demo/app/-/manifest/1.0`);
    const manifest = JSON.parse((await page.locator('#manifest-json').textContent())!) as { layers: { size: number }[]; config: { size: number } };
    const shown = await page.locator('#layers .layer-size').evaluateAll((cells) => cells.map((c) => Number(c.getAttribute('data-bytes'))));
    expect(shown).toEqual(manifest.layers.map((l) => l.size));
    const total = Number(await page.locator('#layers-total').getAttribute('data-bytes'));
    expect(total).toBe(manifest.layers.reduce((n, l) => n + l.size, 0));
    expect(shown.reduce((a, b) => a + b, 0)).toBe(total);
    expect(await page.locator('#labels .label-value').allTextContents()).toContain(EVIL_LABEL);
    expect(await page.title()).not.toBe('owned');
    expect(dialogs).toEqual([]);
    expect(await page.locator('#referrers h3').allTextContents()).toEqual(['application/vnd.dev.cosign.artifact.sig.v1+json']);
    expect((await page.locator('#same-digest-tags a').allTextContents()).sort()).toEqual(['1.0', 'latest', 'old']);
    await shot('manifest');
  });

  it('the copy button copies the pull command', async () => {
    await page.goto(`${srv.url}/r/demo/app`);
    await shot('repository');
    const line = page.locator('.pull li').first();
    const command = await line.locator('code').textContent();
    expect(command).toMatch(new RegExp(`^docker pull ${host.replace(/[.]/g, '\\.')}/demo/app:(1\\.0|latest|old)$`));
    await line.locator('button.copy').click();
    await expect.poll(() => line.locator('button.copy').textContent()).toBe('Copied');
    expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(command);
  });

  it('delete removes a tag and the API agrees', async () => {
    await page.goto(`${srv.url}/r/demo/app`);
    await page.click('a[aria-label="Delete tag old"]');
    await page.click('#confirm-delete');
    await page.waitForURL(`${srv.url}/r/demo/app`);
    expect(await page.locator('#tags tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-name')))).not.toContain('old');
    expect((await api('/v2/demo/app/manifests/old', { method: 'HEAD' })).status).toBe(404);
    expect((await api('/v2/demo/app/manifests/1.0', { method: 'HEAD' })).status).toBe(200);
    const tags = (await (await api('/v2/demo/app/tags/list')).json()) as { tags: string[] };
    expect(tags.tags.sort()).toEqual(['1.0', 'latest']);
  });

  it('fits a phone-width screen, follows the dark theme and works from the keyboard', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.emulateMedia({ colorScheme: 'dark' });
    await page.goto(`${srv.url}/r/demo/app`);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow).toBeLessThanOrEqual(0);
    expect(await page.evaluate(() => getComputedStyle(document.body).backgroundColor)).toBe('rgb(18, 22, 27)');
    await shot('repository-phone-dark');
    await page.emulateMedia({ colorScheme: 'light' });
    expect(await page.evaluate(() => getComputedStyle(document.body).backgroundColor)).toBe('rgb(255, 255, 255)');
    await page.setViewportSize({ width: 1280, height: 800 });
    // Keyboard: the skip link first, then the filter box is reachable and submits with Enter.
    await page.goto(`${srv.url}/r/demo/app`);
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => document.activeElement?.textContent)).toBe('Skip to content');
    await page.focus('#tag-filter');
    await page.keyboard.type('1.');
    expect(await page.locator('#tags tbody tr:visible').count()).toBe(1);
    await page.keyboard.press('Enter');
    await page.waitForURL(/q=1\./);
    expect(await page.locator('#tags tbody tr').count()).toBe(1);
  });

  it('is readable with JavaScript off', async () => {
    const noJs = await launchChromium({ javaScriptEnabled: false });
    try {
      const p = await noJs.context.newPage();
      await p.goto(`${srv.url}/-/login`);
      await p.fill('input[name=username]', ROOT[0]);
      await p.fill('input[name=password]', ROOT[1]);
      await p.click('button[type=submit]');
      await p.goto(`${srv.url}/r/demo/app/-/manifest/1.0`);
      expect(await p.locator('#layers .layer-size').count()).toBeGreaterThan(0);
      expect(await p.locator('button.copy:visible').count()).toBe(0);
      expect(await p.locator('.pull code').first().textContent()).toContain('docker pull');
    } finally {
      await noJs.close();
    }
  });
});
