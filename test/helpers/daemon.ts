// Real service daemons for tests (PostgreSQL, Ceph): each is this process's own child,
// started in the foreground so that its readiness is a line it prints and its death is an
// `exit` event, and stopped by its pid. Whatever a test file leaves running is killed
// when the test process exits, or dies (parent-death signal).

import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Daemon {
  name: string;
  child: ChildProcess;
  /** What it printed (stdout and stderr), the last 64 KiB. */
  output(): string;
  /** Resolves on the first output line that matches; rejects if it exits or times out first. */
  waitFor(line: RegExp, timeoutMs: number, what: string): Promise<void>;
  /** Signals it (SIGTERM unless told) and resolves once it is gone; SIGKILL after 5 s. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** False once it exited (or never started). */
  running(): boolean;
}

const OUTPUT_LIMIT = 64 * 1024;
const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** uid and gid of a local account, for daemons that refuse to run as root (postgres). */
export function account(name: string): { uid: number; gid: number } {
  const entry = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .map((l) => l.split(':'))
    .find((f) => f[0] === name);
  if (!entry) throw new Error(`no local account ${name} in /etc/passwd`);
  return { uid: Number(entry[2]), gid: Number(entry[3]) };
}

/** util-linux's setpriv: `--pdeathsig KILL` makes a daemon die with the test process, even a SIGKILLed one. */
const SETPRIV = '/usr/bin/setpriv';

export function startDaemon(name: string, command: string, args: string[], options: SpawnOptions = {}): Daemon {
  const [file, argv] = existsSync(SETPRIV) ? [SETPRIV, ['--pdeathsig', 'KILL', '--', command, ...args]] : [command, args];
  const child = spawn(file, argv, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  // `gone` fires once: on exit, or on a spawn error (a missing binary never exits).
  let alive = true;
  const gone = new EventEmitter();
  const end = () => {
    if (!alive) return;
    alive = false;
    running.delete(child);
    gone.emit('gone');
  };
  child.once('exit', end);
  let text = '';
  const watchers = new Set<(chunk: string) => void>();
  const onData = (d: Buffer) => {
    const chunk = d.toString();
    text = (text + chunk).slice(-OUTPUT_LIMIT);
    for (const w of watchers) w(chunk);
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  child.once('error', (err) => {
    text += `\n${err.message}`;
    end();
  });

  const daemon: Daemon = {
    name,
    child,
    output: () => text,
    running: () => alive,
    waitFor(line, timeoutMs, what) {
      return new Promise((resolve, reject) => {
        // Lines may arrive split across chunks: match against everything since the wait began.
        let seen = '';
        const done = (err?: Error) => {
          clearTimeout(timer);
          watchers.delete(watch);
          gone.off('gone', onExit);
          if (err) reject(err);
          else resolve();
        };
        const watch = (chunk: string) => {
          seen = (seen + chunk).slice(-OUTPUT_LIMIT);
          if (line.test(seen)) done();
        };
        const onExit = () => done(new Error(`${name} exited while waiting for ${what}:\n${text.slice(-4000)}`));
        const timer = setTimeout(() => done(new Error(`${name}: no ${what} within ${timeoutMs} ms:\n${text.slice(-4000)}`)), timeoutMs);
        if (!alive) return onExit();
        watchers.add(watch);
        gone.once('gone', onExit);
      });
    },
    stop(signal = 'SIGTERM') {
      if (!alive) return Promise.resolve();
      return new Promise((resolve) => {
        const force = setTimeout(() => child.kill('SIGKILL'), 5000);
        gone.once('gone', () => {
          clearTimeout(force);
          resolve();
        });
        child.kill(signal);
      });
    },
  };
  return daemon;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * A fresh directory for one service instance (`berth-<kind>-<pid>-XXXXXX`), in /dev/shm
 * when there is one (tmpfs: initdb takes half the time). First removes the directories
 * of test processes that are gone: a SIGKILLed test cannot clean up after itself.
 */
export async function serviceDir(kind: string): Promise<string> {
  const base = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
  const pattern = new RegExp(`^berth-${kind}-(\\d+)-`);
  for (const name of await readdir(base)) {
    const owner = pattern.exec(name)?.[1];
    if (owner && !processAlive(Number(owner))) await rm(join(base, name), { recursive: true, force: true });
  }
  return mkdtemp(join(base, `berth-${kind}-${process.pid}-`));
}
