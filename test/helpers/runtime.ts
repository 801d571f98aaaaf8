// What the runtime tests share: whether this host can run containers (skip with a
// message, or fail under BERTH_REQUIRE_E2E=1), the built `berth` command run as a child
// process (berth-cli.ts), and the busybox test image with its applets on PATH.

import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { overlaySupported, preflight } from '../../src/runtime/tools.js';
import { BERTH_MAIN, berthCli, type CliRun } from './berth-cli.js';
import { buildBusyboxImage, e2eTools } from './images.js';
import { stackLayers, tarLayer } from './runtime-images.js';

export const BERTH = BERTH_MAIN;

export function runtimeAvailable(): boolean {
  const problems = preflight();
  if (!overlaySupported()) problems.push('overlayfs is not available');
  if (problems.length === 0) return e2eTools('umoci', 'busybox');
  const message = `runtime tests: ${problems.join('; ')}`;
  if (process.env.BERTH_REQUIRE_E2E === '1') throw new Error(`${message} and BERTH_REQUIRE_E2E=1`);
  process.stderr.write(`skipping: ${message}\n`);
  return false;
}

export type Result = CliRun;

export function berth(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Result> {
  return berthCli(args, { env });
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

/**
 * Container cgroups left behind: `berth/<id>` directories with no process in them that
 * are still there after `waitMs`. Test files run in parallel, so other files' containers
 * have cgroups too: those have processes, or go (or get their first process) shortly.
 */
export async function leakedCgroups(waitMs = 10_000): Promise<string[]> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const empty: string[] = [];
    for (const hierarchy of await readdir('/sys/fs/cgroup').catch(() => [] as string[])) {
      const base = join('/sys/fs/cgroup', hierarchy, 'berth');
      for (const e of await readdir(base, { withFileTypes: true }).catch(() => [])) {
        if (!e.isDirectory()) continue;
        const procs = await readFile(join(base, e.name, 'cgroup.procs'), 'utf8').catch(() => undefined);
        if (procs !== undefined && procs.trim() === '') empty.push(`${hierarchy}/berth/${e.name}`);
      }
    }
    if (empty.length === 0 || Date.now() > deadline) return empty;
    await new Promise((r) => setTimeout(r, 100));
  }
}
