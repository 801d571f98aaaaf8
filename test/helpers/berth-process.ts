// Runs the built `berth serve` (dist/src/cli/main.js) as a child process, so a test can
// kill it with SIGKILL at any moment and start it again on the same data directory and
// port: the crash-safety tests need a real process, not an in-process server.
//
//   const berth = await startBerthProcess();
//   ... await berth.kill9(); await berth.restart(); ... await berth.destroy();

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { tempDir } from './images.js';

const MAIN = fileURLToPath(new URL('../../dist/src/cli/main.js', import.meta.url));
const READY_TIMEOUT_MS = 15_000;

export interface BerthProcess {
  /** `http://127.0.0.1:PORT`; the same across restarts. */
  url: string;
  port: number;
  dataDir: string;
  /** The running child (a new one after each restart). */
  child: ChildProcess;
  /** SIGKILL: no shutdown code runs, as in a crash or an OOM kill. Resolves once the process is gone. */
  kill9(): Promise<void>;
  /** Starts the server again on the same data directory and port. */
  restart(): Promise<void>;
  /** SIGKILL if still running, then removes the data directory. */
  destroy(): Promise<void>;
  /** What the process printed (JSON log lines), for failure messages. */
  output(): string;
}

/** Keeps the last lines of a process's output; a request storm logs a lot. */
const OUTPUT_LIMIT = 256 * 1024;

/**
 * Spawns `berth serve --listen 127.0.0.1:<port> --data <dir>` and resolves once it logged
 * "listening" with its address (port 0 lets it pick a free one, read back from that line).
 */
function spawnServe(dataDir: string, port: number, output: { text: string }, env: NodeJS.ProcessEnv = {}): Promise<{ child: ChildProcess; port: number }> {
  // One process unless the run asks for more: SIGKILL must hit the process that writes.
  const workers = process.env.BERTH_TEST_WORKERS ?? '1';
  const child = spawn(process.execPath, [MAIN, 'serve', '--workers', workers, '--listen', `127.0.0.1:${port}`, '--data', dataDir], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, BERTH_LOG_LEVEL: 'info', ...env },
  });
  const append = (d: Buffer) => {
    output.text = (output.text + d.toString()).slice(-OUTPUT_LIMIT);
  };
  child.stderr!.on('data', append);
  return new Promise((resolve, reject) => {
    let ready = false;
    let pending = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`berth serve did not start in ${READY_TIMEOUT_MS} ms:\n${output.text}`));
    }, READY_TIMEOUT_MS);
    const onExit = (code: number | null) => {
      clearTimeout(timer);
      reject(new Error(`berth serve exited with ${code} before listening:\n${output.text}`));
    };
    child.once('exit', onExit);
    child.stdout!.on('data', (d: Buffer) => {
      append(d);
      if (ready) return;
      pending += d.toString();
      const m = /"listen":"127\.0\.0\.1:(\d+)"/.exec(pending);
      if (!m) return;
      ready = true;
      clearTimeout(timer);
      child.off('exit', onExit);
      resolve({ child, port: Number(m[1]) });
    });
  });
}

function killed(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGKILL');
  return exited;
}

/** `env`: more environment for `berth serve` (BERTH_DATABASE_URL, BERTH_S3_*...). */
export async function startBerthProcess(options: { env?: NodeJS.ProcessEnv } = {}): Promise<BerthProcess> {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: build first with \`npx tsc -p tsconfig.json\``);
  const dataDir = await tempDir('berth-durability-');
  const output = { text: '' };
  const first = await spawnServe(dataDir, 0, output, options.env);
  const proc: BerthProcess = {
    url: `http://127.0.0.1:${first.port}`,
    port: first.port,
    dataDir,
    child: first.child,
    kill9: () => killed(proc.child),
    async restart() {
      await killed(proc.child);
      proc.child = (await spawnServe(dataDir, proc.port, output, options.env)).child;
    },
    async destroy() {
      await killed(proc.child);
      await rm(dataDir, { recursive: true, force: true });
    },
    output: () => output.text,
  };
  return proc;
}
