// What the runtime tests share: whether this host can run containers (skip with a
// message, or fail under BERTH_REQUIRE_E2E=1), the built `berth` command run as a child
// process, and the busybox test image with its applets on PATH.

import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { overlaySupported, preflight } from '../../src/runtime/tools.js';
import { buildBusyboxImage, e2eTools } from './images.js';
import { stackLayers, tarLayer } from './runtime-images.js';

export const BERTH = join(import.meta.dirname, '..', '..', 'dist', 'src', 'cli', 'main.js');

export function runtimeAvailable(): boolean {
  const problems = preflight();
  if (!overlaySupported()) problems.push('overlayfs is not available');
  if (problems.length === 0) return e2eTools('umoci', 'busybox');
  const message = `runtime tests: ${problems.join('; ')}`;
  if (process.env.BERTH_REQUIRE_E2E === '1') throw new Error(`${message} and BERTH_REQUIRE_E2E=1`);
  process.stderr.write(`skipping: ${message}\n`);
  return false;
}

export interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

export function berth(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Result> {
  if (!existsSync(BERTH)) throw new Error(`${BERTH} is missing: build with npx tsc -p tsconfig.json first`);
  return new Promise((resolve) => {
    execFile(process.execPath, [BERTH, ...args], { env: { ...process.env, ...env }, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** The JSON a `berth ... --json` printed; on failure, says what the command wrote to stderr. */
export function json<T>(r: Result): T {
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`berth exited ${r.code} without JSON: ${r.stderr}`);
  }
}

/** busybox's applets as symlinks, so `sh`, `hostname`... are on PATH as in the real image. */
const APPLETS = ['sh', 'cat', 'dd', 'hostname', 'id', 'ls', 'touch', 'sleep', 'test', 'httpd', 'nc', 'printf', 'tail', 'echo', 'true', 'grep'];

/** Builds `bare` (busybox alone) and `latest` (with its applets on PATH) in `layout`. */
export async function buildRuntimeImage(layout: string): Promise<void> {
  await buildBusyboxImage(layout, { tag: 'bare' });
  const links = await tarLayer([{ name: 'bin/', type: 'directory' }, ...APPLETS.map((a) => ({ name: `bin/${a}`, type: 'symlink' as const, linkname: 'busybox' }))]);
  await stackLayers(layout, 'bare', 'latest', [links]);
}
