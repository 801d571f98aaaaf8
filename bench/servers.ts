// The two registries under test, each a separate process on a random loopback port with
// a fresh data directory: Berth (`node dist/src/cli/main.js serve`) and, when installed,
// the reference registry (CNCF distribution, /usr/bin/docker-registry) on filesystem
// storage. Logs go to files in the run's temp directory, never to the terminal.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, openSync, closeSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SERVE_NODE_FLAGS } from '../src/cli/node-flags.js';
import { setTimeout as sleep } from 'node:timers/promises';

export const REFERENCE_BINARY = '/usr/bin/docker-registry';

export interface Target {
  /** `berth` or `reference`. */
  name: string;
  url: string;
  pid: number;
  dataDir: string;
  logFile: string;
  stop(): Promise<void>;
}

export interface LogOptions {
  /** Both registries at warn (reference access log off) instead of their default info. */
  quiet: boolean;
}

/** A free loopback TCP port (bound, read, released); the tests' helpers use it too. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

async function waitReady(url: string, child: ChildProcess, logFile: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${url}: server exited with ${child.exitCode}: ${tail(logFile)}`);
    try {
      const res = await fetch(`${url}/v2/`);
      await res.arrayBuffer();
      if (res.ok || res.status === 401) return; // 401: up, with authentication on
    } catch {
      // not listening yet
    }
    await sleep(50);
  }
  throw new Error(`${url}: server did not start: ${tail(logFile)}`);
}

function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').slice(-2000);
  } catch {
    return '(no log)';
  }
}

/** Spawns `command` with stdout and stderr into `logFile`, retrying when the port was taken meanwhile. */
async function launch(
  name: string,
  dir: string,
  start: (port: number) => { command: string; args: string[]; env?: NodeJS.ProcessEnv },
): Promise<Target> {
  const dataDir = join(dir, 'data');
  const logFile = join(dir, 'server.log');
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const { command, args, env } = start(port);
    const fd = openSync(logFile, 'w');
    const child = spawn(command, args, { stdio: ['ignore', fd, fd], env: env ?? process.env });
    closeSync(fd);
    const url = `http://127.0.0.1:${port}`;
    try {
      await waitReady(url, child, logFile);
    } catch (err) {
      child.kill('SIGKILL');
      if (attempt < 3 && /address already in use|EADDRINUSE/.test(tail(logFile))) continue;
      throw err;
    }
    return {
      name,
      url,
      pid: child.pid!,
      dataDir,
      logFile,
      async stop() {
        if (child.exitCode === null && child.signalCode === null) {
          const exited = new Promise((r) => child.once('exit', r));
          child.kill('SIGTERM');
          await Promise.race([exited, sleep(5000).then(() => child.kill('SIGKILL'))]);
        }
      },
    };
  }
}

/** dist/src/cli/main.js, beside this file's dist/bench/. */
function berthMain(): string {
  return fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
}

/** Starts Berth in `<root>/<dirName>`, with `serveArgs` added to `berth serve`'s. */
/**
 * One server process unless `serveArgs` name `--workers`: the server's CPU (and a
 * --cpu-prof profile) is taken from its pid, which with several workers is a primary
 * that serves nothing.
 */
export async function startBerth(root: string, logs: LogOptions, cpuProfileDir?: string, dirName = 'berth', serveArgs: string[] = []): Promise<Target> {
  const dir = join(root, dirName);
  await mkdir(dir, { recursive: true });
  const main = berthMain();
  if (!existsSync(main)) throw new Error(`${main} is missing: run \`npx tsc -p tsconfig.json\` first`);
  return launch('berth', dir, (port) => ({
    command: process.execPath,
    args: [
      ...SERVE_NODE_FLAGS,
      ...(cpuProfileDir ? ['--cpu-prof', '--cpu-prof-dir', cpuProfileDir] : []),
      main,
      'serve',
      '--listen',
      `127.0.0.1:${port}`,
      '--data',
      join(dir, 'data'),
      ...(serveArgs.includes('--workers') ? [] : ['--workers', '1']),
      ...serveArgs,
    ],
    env: { ...process.env, BERTH_LOG_LEVEL: logs.quiet ? 'warn' : 'info' },
  }));
}

/** Starts the reference registry in `<root>/<dirName>`. */
export async function startReference(root: string, logs: LogOptions, dirName = 'reference'): Promise<Target> {
  const dir = join(root, dirName);
  await mkdir(dir, { recursive: true });
  const config = join(dir, 'config.yml');
  return launch('reference', dir, (port) => {
    writeFileSync(
      config,
      [
        'version: 0.1',
        'log:',
        `  level: ${logs.quiet ? 'warn' : 'info'}`,
        '  accesslog:',
        `    disabled: ${logs.quiet}`,
        'storage:',
        // As in the configuration Debian ships: blob descriptors cached in memory.
        '  cache:',
        '    blobdescriptor: inmemory',
        '  filesystem:',
        `    rootdirectory: ${join(dir, 'data')}`,
        '  delete:',
        '    enabled: true',
        'http:',
        `  addr: 127.0.0.1:${port}`,
        '',
      ].join('\n'),
    );
    return { command: REFERENCE_BINARY, args: ['serve', config] };
  });
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

/** A line `Key:   123 kB` of /proc/<pid>/status, in bytes. */
export function procStatusBytes(pid: number, key: 'VmHWM' | 'VmRSS'): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status);
  if (!m) throw new Error(`no ${key} in /proc/${pid}/status`);
  return Number(m[1]) * 1024;
}

/**
 * Resets the peak resident size (VmHWM) to the current size, so a later read gives the
 * peak of one workload only. Returns false where the kernel refuses.
 */
export function resetPeakRss(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

const CLOCK_TICKS = 100; // USER_HZ: 100 on every Linux architecture Node runs on

/** CPU seconds (user + system) a process has used so far, from /proc/<pid>/stat. */
export function processCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which is in parentheses and may contain spaces.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}
