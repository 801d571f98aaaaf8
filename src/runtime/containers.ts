// Containers on disk: `<root>/containers/<id>/state.json` plus the container's
// writable layer (upper/ and work/ for overlayfs, or a merged rootfs/ copy) and, for a
// detached container, its output (`container.log`). The state file is rewritten whole
// (write then rename) at each change of status, so a reader never sees half of it.
// `berth ps`, `inspect`, `prune` and the layer reference counting read it.
//
// Each created or running container names its monitor: the berth process that waits for
// it and releases what it added to the host when it ends (`berth run`, or the detached
// monitor of `run -d`). When that process is gone (kill -9), the next listing finds the
// container stale and releases its namespace, slirp4netns and cgroups itself.

import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { removeCgroup, type CgroupDir, type Limits } from './cgroups.js';
import { releaseNetwork, type NetworkMode, type PortBinding } from './network.js';
import type { Volume } from './setup-script.js';
import { processAlive, type RuntimeStore } from './store.js';

export type RootfsMode = 'overlay' | 'copy';

/** How the container runs: everything `start` needs, and what `inspect` shows. */
export interface ContainerConfig {
  /** From the image, for inspect (argv below is what runs). */
  entrypoint: string[];
  cmd: string[];
  env: string[];
  workdir: string;
  /** As given (`-u` or the image's User), and resolved in the image. */
  user: string;
  uid: number;
  gid: number;
  home: string;
  hostname: string;
  exposedPorts: string[];
  labels: Record<string, string>;
  limits: Limits;
  net: NetworkMode;
  ports: PortBinding[];
  volumes: Volume[];
  dns: string[];
  addHosts: string[];
  tty: boolean;
  interactive: boolean;
  /** Detached: output kept in container.log. */
  detached: boolean;
}

/** A process, with its start time so a reused pid is not mistaken for it. */
export interface ProcessRef {
  pid: number;
  start: string;
}

export interface ContainerState {
  id: string;
  name: string;
  /** The image as the user named it, and the manifest digest it resolved to. */
  image: string;
  imageId: string;
  /** Diff ids of the image's layers, bottom first: the layers this container keeps in use. */
  layers: string[];
  /** The command line that runs: Entrypoint + Cmd (or the command given). */
  command: string[];
  rootfs: RootfsMode;
  autoRemove: boolean;
  created: string;
  status: 'created' | 'running' | 'exited';
  config: ContainerConfig;
  /** Host pid of the container's PID 1 while it runs, and its start time (see processStart). */
  pid?: number;
  pidStart?: string;
  started?: string;
  exitCode?: number;
  oomKilled?: boolean;
  finished?: string;
  /** Why it could not start (docker's State.Error). */
  error?: string;
  monitor?: ProcessRef;
  cgroups?: CgroupDir[];
  /** The published ports while it runs, with the host ports picked for `-p PORT` and `-P`. */
  ports?: PortBinding[];
}

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/** The kernel's start time of a process (field 22 of /proc/PID/stat), or undefined when it is gone. */
export function processStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

export function thisProcess(): ProcessRef {
  return { pid: process.pid, start: processStart(process.pid) ?? '' };
}

function isAlive(ref: ProcessRef | undefined): boolean {
  return ref !== undefined && processStart(ref.pid) === ref.start;
}

export class Containers {
  constructor(private readonly store: RuntimeStore) {}

  dir(id: string): string {
    return join(this.store.containers, id);
  }

  logFile(id: string): string {
    return join(this.dir(id), 'container.log');
  }

  /** Creates the container's directory and first state; names must be unique. */
  async create(fields: Omit<ContainerState, 'id' | 'name' | 'created' | 'status' | 'monitor'> & { name?: string }): Promise<ContainerState> {
    const id = randomBytes(32).toString('hex');
    const name = fields.name ?? `berth-${id.slice(0, 12)}`;
    if (!NAME_RE.test(name)) throw new Error(`invalid container name ${name} (letters, digits, _ . -)`);
    const state: ContainerState = { ...fields, id, name, created: new Date().toISOString(), status: 'created', monitor: thisProcess() };
    await this.store.withLock(async () => {
      if ((await this.list()).some((c) => c.name === name)) throw new Error(`a container named ${name} already exists (berth rm ${name} removes it)`);
      await mkdir(this.dir(id), { recursive: true });
      await this.save(state);
    });
    return state;
  }

  async save(state: ContainerState): Promise<void> {
    const tmp = join(this.dir(state.id), `state.json.${process.pid}.tmp`);
    await writeFile(tmp, JSON.stringify(state, null, 2));
    await rename(tmp, join(this.dir(state.id), 'state.json'));
  }

  async read(id: string): Promise<ContainerState | undefined> {
    return readFile(join(this.dir(id), 'state.json'), 'utf8').then(
      (t) => JSON.parse(t) as ContainerState,
      () => undefined,
    );
  }

  /**
   * Every container, newest first. A container whose monitor died is released here
   * (see `release`); a `running` one whose PID 1 is gone is reported as exited.
   */
  async list(): Promise<ContainerState[]> {
    const out: ContainerState[] = [];
    for (const id of await readdir(this.store.containers).catch(() => [] as string[])) {
      let state = await this.read(id);
      if (!state) continue;
      if (state.status !== 'exited' && !isAlive(state.monitor)) {
        state = await this.release(state);
        if (!state) continue;
      }
      // While it runs, its PID 1 is known from the pid file the setup script writes.
      state.pid ??= Number(await readFile(join(this.dir(id), 'pid'), 'utf8').catch(() => '')) || undefined;
      if (state.status === 'running' && (!state.pid || !processAlive(state.pid))) state.status = 'exited';
      out.push(state);
    }
    return out.sort((a, b) => b.created.localeCompare(a.created));
  }

  /**
   * Releases what a container whose monitor is gone left on the host: its processes (if
   * any survived), namespace, slirp4netns and cgroups. It ended killed (137, as the
   * monitor's death signal does), or never started (125). `--rm` containers go.
   */
  private async release(state: ContainerState): Promise<ContainerState | undefined> {
    const pid = state.pid;
    // Only the container's own PID 1, never a process that got its pid since.
    if (pid && state.pidStart && processStart(pid) === state.pidStart) process.kill(pid, 'SIGKILL');
    if (state.config?.net === 'slirp4netns') await releaseNetwork(state.id);
    await removeCgroup(state.cgroups ?? []).catch(() => undefined);
    if (state.autoRemove) {
      await this.remove(state.id);
      return undefined;
    }
    const ended: ContainerState = { ...state, status: 'exited', pid, exitCode: state.status === 'running' ? 137 : 125, finished: new Date().toISOString() };
    await this.save(ended);
    return ended;
  }

  /** Finds a container by name, full id or id prefix. */
  async find(idOrName: string): Promise<ContainerState | undefined> {
    const all = await this.list();
    return all.find((c) => c.name === idOrName || c.id === idOrName) ?? single(all.filter((c) => c.id.startsWith(idOrName)));
  }

  /** Like find, with docker's message when there is none. */
  async get(idOrName: string): Promise<ContainerState> {
    const c = await this.find(idOrName);
    if (!c) throw new Error(`no such container: ${idOrName}`);
    return c;
  }

  async remove(id: string): Promise<void> {
    await rm(this.dir(id), { recursive: true, force: true });
  }
}

function single<T>(xs: T[]): T | undefined {
  return xs.length === 1 ? xs[0] : undefined;
}
