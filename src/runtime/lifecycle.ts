// What is done to a container after it started, as docker does it: stop (SIGTERM, then
// SIGKILL after a timeout), kill, remove, exec (a new process joining its namespaces and
// cgroup), top (its processes) and stats (its cgroup's counters). Signals go to the host
// pid of the container's PID 1; the berth process waiting for the container (its
// monitor) records the exit and releases the host resources, so these functions wait for
// that record rather than doing it twice.

import { readdir, readlink } from 'node:fs/promises';
import { constants as osConstants } from 'node:os';
import { cgroupUsage, procsFiles, type CgroupUsage } from './cgroups.js';
import { Containers, type ContainerState } from './containers.js';
import { containerEnv, exitStatus, spawnOnTerminal } from './run.js';
import { execArgs, shq } from './setup-script.js';
import { processAlive, type RuntimeStore } from './store.js';
import { hostTool, requireRuntimeHost } from './tools.js';

const POLL_MS = 25;
/** How long the monitor gets to record an exit after the process is gone. */
const RECORD_TIMEOUT_MS = 10_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `TERM`, `SIGTERM` or `15` -> `SIGTERM`. */
export function parseSignal(text: string): NodeJS.Signals {
  const upper = text.toUpperCase();
  const name = /^\d+$/.test(text)
    ? Object.entries(osConstants.signals).find(([, n]) => n === Number(text))?.[0]
    : upper.startsWith('SIG') ? upper : `SIG${upper}`;
  if (!name || !(name in osConstants.signals)) throw new Error(`invalid signal ${text}`);
  return name as NodeJS.Signals;
}

export function isRunning(c: ContainerState): boolean {
  return c.status === 'running' && c.pid !== undefined && processAlive(c.pid);
}

/** Waits until `pid` is gone; false if it still runs after `ms`. */
async function waitGone(pid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (processAlive(pid)) {
    if (Date.now() >= deadline) return false;
    await sleep(POLL_MS);
  }
  return true;
}

/** Waits for the monitor to record the exit (and so to release the network and cgroups). */
async function waitRecorded(containers: Containers, id: string): Promise<ContainerState | undefined> {
  const deadline = Date.now() + RECORD_TIMEOUT_MS;
  for (;;) {
    const c = (await containers.list()).find((x) => x.id === id);
    if (!c || (c.status === 'exited' && (await containers.read(id))?.status !== 'running')) return c;
    if (Date.now() >= deadline) return c;
    await sleep(POLL_MS);
  }
}

export class ContainerNotRunningError extends Error {}

export async function killContainer(store: RuntimeStore, c: ContainerState, signal: NodeJS.Signals): Promise<void> {
  if (!isRunning(c)) throw new ContainerNotRunningError(`container ${c.name} is not running`);
  process.kill(c.pid!, signal);
  if (signal === 'SIGKILL') {
    await waitGone(c.pid!, RECORD_TIMEOUT_MS);
    await waitRecorded(new Containers(store), c.id);
  }
}

/**
 * docker stop: SIGTERM to PID 1, SIGKILL after `timeoutSeconds` if it is still there
 * (a PID 1 without a SIGTERM handler ignores it), then waits for the exit to be recorded.
 * Stopping a stopped container does nothing.
 */
export async function stopContainer(store: RuntimeStore, c: ContainerState, timeoutSeconds: number): Promise<void> {
  if (!isRunning(c)) return;
  const pid = c.pid!;
  process.kill(pid, 'SIGTERM');
  if (!(await waitGone(pid, timeoutSeconds * 1000))) {
    if (processAlive(pid)) process.kill(pid, 'SIGKILL');
    await waitGone(pid, RECORD_TIMEOUT_MS);
  }
  await waitRecorded(new Containers(store), c.id);
}

/** docker rm: a running container only with `force` (killed first). */
export async function removeContainer(store: RuntimeStore, c: ContainerState, force: boolean): Promise<void> {
  const containers = new Containers(store);
  if (isRunning(c)) {
    if (!force) throw new Error(`container ${c.name} is running: stop it first, or use rm -f`);
    await killContainer(store, c, 'SIGKILL');
  }
  await containers.remove(c.id);
}

export interface ExecOptions {
  env?: string[];
  workdir?: string;
  /** Resolved uid and gid (default: the container's). */
  uid?: number;
  gid?: number;
  tty?: boolean;
  interactive?: boolean;
}

/**
 * Runs `argv` in a running container: joins its cgroup (the shell writes itself into
 * cgroup.procs before exec, so everything after is counted and limited), then its
 * namespaces, root and working directory through nsenter, with the container's
 * environment, user and capabilities. Resolves to the exit status: 126 when the command
 * cannot be run, 127 when it is not found (nsenter's codes, docker's too).
 */
export async function execInContainer(c: ContainerState, argv: string[], opts: ExecOptions = {}): Promise<number> {
  requireRuntimeHost();
  if (!isRunning(c)) throw new ContainerNotRunningError(`container ${c.name} is not running`);
  const env = containerEnv(c.config.env, opts.env ?? [], {});
  const join = procsFiles(c.cgroups ?? []).map((f) => `echo $$ > ${shq(f)} || exit 125`).join('\n');
  const command = [
    hostTool('sh'), '-c', `${join}\nexec "$@"`, 'berth-exec',
    // Joins the namespaces but the mount one: with the container's capabilities dropped
    // next, the chroot into PID 1's root (which shows the container's mounts) is what
    // remains possible, and it is what the command sees as /.
    hostTool('nsenter'), `--target=${c.pid}`, '--uts', '--ipc', '--net', '--pid',
    hostTool('env'), '-i',
    ...execArgs(env, opts.workdir ?? c.config.workdir, opts.uid ?? c.config.uid, opts.gid ?? c.config.gid, argv, `/proc/${c.pid}/root`),
  ];
  const child = spawnOnTerminal(command, opts.tty ?? false, { stdio: [opts.interactive || opts.tty ? 'inherit' : 'ignore', 'inherit', 'inherit'] });
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve(exitStatus(code, signal)));
  });
}

/** Host pids of the processes in the container's PID namespace (PID 1's and those of exec). */
export async function containerPids(c: ContainerState): Promise<number[]> {
  if (!isRunning(c)) throw new ContainerNotRunningError(`container ${c.name} is not running`);
  const ns = await readlink(`/proc/${c.pid}/ns/pid`);
  const out: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    // A process in a namespace nested below would differ too; containers have none.
    if ((await readlink(`/proc/${entry}/ns/pid`).catch(() => '')) === ns) out.push(Number(entry));
  }
  return out;
}

export interface ContainerStats {
  id: string;
  name: string;
  /** Percent of one CPU over the sampling interval. */
  cpuPercent?: number;
  usage: CgroupUsage;
}

/** Samples each container's cgroup twice, `intervalMs` apart, for its CPU use. */
export async function sampleStats(containers: ContainerState[], intervalMs: number): Promise<ContainerStats[]> {
  const first = await Promise.all(containers.map((c) => cgroupUsage(c.cgroups ?? [])));
  const t0 = process.hrtime.bigint();
  await sleep(intervalMs);
  const second = await Promise.all(containers.map((c) => cgroupUsage(c.cgroups ?? [])));
  const elapsed = Number(process.hrtime.bigint() - t0);
  return containers.map((c, i) => {
    const a = first[i]!.cpuNs;
    const b = second[i]!.cpuNs;
    return { id: c.id, name: c.name, usage: second[i]!, cpuPercent: a !== undefined && b !== undefined ? ((b - a) / elapsed) * 100 : undefined };
  });
}
