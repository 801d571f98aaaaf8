// Resource limits and accounting through cgroups, v2 or v1, whichever the host has for
// each controller: a host may mount cgroup2 and still keep memory, pids and cpu on v1
// hierarchies (the hybrid layout), so each controller is looked up on its own. Every
// container gets `berth/<id>` under each hierarchy it can have (for the limits asked,
// and for `berth stats`, `top` and `exec`, which read or join it); the setup script moves
// the container's first process into it before anything else runs, so every process of
// the container is limited and counted from the start. The directories are recorded in
// the container's state, so another berth process can read or remove them.

import { access, mkdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface Limits {
  /** Bytes. */
  memory?: number;
  /** Memory plus swap, bytes, as docker's --memory-swap; -1 is unlimited swap. Default: no swap. */
  memorySwap?: number;
  /** CPUs, fractional (0.5 = half of one CPU). */
  cpus?: number;
  /** Relative weight, docker's --cpu-shares (1024 is the default weight). */
  cpuShares?: number;
  /** CPUs the container may run on, e.g. `0-1` or `0,2`. */
  cpusetCpus?: string;
  pids?: number;
}

type Controller = 'memory' | 'cpu' | 'cpuacct' | 'pids' | 'cpuset';
const ACCOUNTING: Controller[] = ['memory', 'cpu', 'cpuacct', 'pids'];

interface Hierarchy {
  version: 1 | 2;
  mount: string;
}

/** One directory of the container's cgroup (one per hierarchy used). */
export interface CgroupDir {
  path: string;
  version: 1 | 2;
  controllers: Controller[];
}

/** Where each controller is mounted: v2 when the unified hierarchy offers it, else v1. */
async function hierarchies(): Promise<Map<Controller, Hierarchy>> {
  const found = new Map<Controller, Hierarchy>();
  const mountinfo = await readFile('/proc/self/mountinfo', 'utf8');
  const v1: { mount: string; options: string[] }[] = [];
  const all: Controller[] = [...ACCOUNTING, 'cpuset'];
  for (const line of mountinfo.split('\n')) {
    const [pre, post] = line.split(' - ');
    if (!pre || !post) continue;
    const mount = pre.split(' ')[4]!;
    const [fstype, , superOptions] = post.split(' ');
    if (fstype === 'cgroup2') {
      const controllers = (await readFile(join(mount, 'cgroup.controllers'), 'utf8').catch(() => '')).trim().split(/\s+/);
      // v2 has no cpuacct: its cpu.stat counts usage in every cgroup.
      for (const c of all) if (controllers.includes(c === 'cpuacct' ? 'cpu' : c)) found.set(c, { version: 2, mount });
    } else if (fstype === 'cgroup') {
      v1.push({ mount, options: (superOptions ?? '').split(',') });
    }
  }
  for (const c of all) {
    if (found.has(c)) continue;
    const h = v1.find((m) => m.options.includes(c));
    if (h) found.set(c, { version: 1, mount: h.mount });
  }
  return found;
}

/** docker's (runc's) conversion of cpu shares [2, 262144] to a v2 weight [1, 10000]. */
export function sharesToWeight(shares: number): number {
  return 1 + Math.floor(((shares - 2) * 9999) / 262142);
}

/** The limit files to write for one controller, in order (memsw needs the memory limit first). */
function limitFiles(c: Controller, version: 1 | 2, limits: Limits): [string, string][] {
  switch (c) {
    case 'memory': {
      if (limits.memory === undefined) return [];
      // Without --memory-swap, swap is limited to nothing, so going over the limit means the OOM killer, not swapping.
      const total = limits.memorySwap ?? limits.memory;
      if (version === 2) return [['memory.max', String(limits.memory)], ['memory.swap.max', total === -1 ? 'max' : String(total - limits.memory)]];
      return [['memory.limit_in_bytes', String(limits.memory)], ['memory.memsw.limit_in_bytes', String(total)]];
    }
    case 'cpu': {
      const files: [string, string][] = [];
      if (limits.cpus !== undefined) {
        const period = 100_000;
        const quota = Math.max(1000, Math.round(limits.cpus * period));
        files.push(...(version === 2 ? [['cpu.max', `${quota} ${period}`] as [string, string]] : [['cpu.cfs_period_us', String(period)], ['cpu.cfs_quota_us', String(quota)]] as [string, string][]));
      }
      if (limits.cpuShares !== undefined) files.push(version === 2 ? ['cpu.weight', String(sharesToWeight(limits.cpuShares))] : ['cpu.shares', String(limits.cpuShares)]);
      return files;
    }
    case 'cpuset':
      return limits.cpusetCpus === undefined ? [] : [['cpuset.cpus', limits.cpusetCpus]];
    case 'pids':
      return limits.pids === undefined ? [] : [['pids.max', String(limits.pids)]];
    case 'cpuacct':
      return [];
  }
}

const OPTIONAL_FILES = new Set(['memory.swap.max', 'memory.memsw.limit_in_bytes']);

/**
 * Creates the container's cgroup: under every accounting controller the host has, plus
 * cpuset when asked for. Throws, saying which, when the host lacks a controller a limit
 * needs. A host without cgroups at all gets an empty list (no limits, no stats).
 */
export async function createCgroup(id: string, limits: Limits): Promise<CgroupDir[]> {
  const wanted: Controller[] = [...ACCOUNTING, ...(limits.cpusetCpus !== undefined ? ['cpuset' as const] : [])];
  const hier = await hierarchies();
  const missing = wanted.filter((c) => !hier.has(c) && limitFiles(c, 1, limits).length > 0);
  if (missing.length > 0) throw new Error(`cannot limit ${missing.join(', ')}: no cgroup controller for it is mounted on this host`);

  const dirs = new Map<string, CgroupDir>();
  try {
    for (const c of wanted) {
      const h = hier.get(c);
      if (!h) continue;
      const limited = limitFiles(c, h.version, limits).length > 0;
      try {
        await joinController(id, c, h, wanted, hier, limits, dirs);
      } catch (err) {
        // A cgroup only for accounting (stats, top) is a nicety: a host that refuses it
        // (a delegated v2 tree with processes in it, say) still runs containers.
        if (limited) throw err;
      }
    }
  } catch (err) {
    await removeCgroup([...dirs.values()]);
    throw err;
  }
  return [...dirs.values()];
}

/** Creates (or reuses) the container's directory under `c`'s hierarchy and writes c's limits. */
async function joinController(
  id: string,
  c: Controller,
  h: Hierarchy,
  wanted: Controller[],
  hier: Map<Controller, Hierarchy>,
  limits: Limits,
  dirs: Map<string, CgroupDir>,
): Promise<void> {
  const parent = join(h.mount, 'berth');
  const path = join(parent, id);
  let dir = dirs.get(path);
  if (!dir) {
    await mkdir(parent, { recursive: true });
    if (h.version === 2) await enableV2Controllers(h.mount, parent, wanted.filter((w) => w !== 'cpuacct' && hier.get(w)?.mount === h.mount));
    await mkdir(path);
    dir = { path, version: h.version, controllers: [] };
    dirs.set(path, dir);
  }
  // A v1 cpuset cgroup starts with no CPUs and no memory nodes: a task cannot join it until both are set.
  if (h.version === 1 && c === 'cpuset') await inheritCpuset(h.mount, parent, path);
  for (const [file, value] of limitFiles(c, h.version, limits)) {
    const at = join(path, file);
    if (OPTIONAL_FILES.has(file) && !(await access(at).then(() => true, () => false))) continue;
    await writeFile(at, value).catch((err: Error) => {
      throw new Error(`cannot set ${file} to ${value}: ${err.message}`);
    });
  }
  dir.controllers.push(c);
}

async function inheritCpuset(mount: string, parent: string, path: string): Promise<void> {
  for (const file of ['cpuset.cpus', 'cpuset.mems']) {
    for (const dir of [parent, path]) {
      const current = (await readFile(join(dir, file), 'utf8')).trim();
      if (current === '') await writeFile(join(dir, file), (await readFile(join(dir === path ? parent : mount, file), 'utf8')).trim());
    }
  }
}

/** On v2 a controller is usable in a child only when every ancestor delegates it. */
async function enableV2Controllers(mount: string, parent: string, controllers: Controller[]): Promise<void> {
  const line = controllers.map((c) => `+${c}`).join(' ');
  await writeFile(join(mount, 'cgroup.subtree_control'), line);
  await writeFile(join(parent, 'cgroup.subtree_control'), line);
}

/** The `cgroup.procs` files a process writes itself into to join the container's cgroup. */
export function procsFiles(dirs: CgroupDir[]): string[] {
  return dirs.map((d) => join(d.path, 'cgroup.procs'));
}

/** True when the kernel's OOM killer killed a process of the container. */
export async function oomKilled(dirs: CgroupDir[]): Promise<boolean> {
  for (const d of dirs.filter((x) => x.controllers.includes('memory'))) {
    const events = await readFile(join(d.path, d.version === 2 ? 'memory.events' : 'memory.oom_control'), 'utf8').catch(() => '');
    const m = /^oom_kill (\d+)$/m.exec(events);
    if (m && Number(m[1]) > 0) return true;
  }
  return false;
}

export interface CgroupUsage {
  /** CPU time used, nanoseconds. */
  cpuNs?: number;
  memoryBytes?: number;
  /** Undefined when unlimited. */
  memoryLimit?: number;
  pids?: number;
}

/** What the container uses now, from its cgroup's counters. */
export async function cgroupUsage(dirs: CgroupDir[]): Promise<CgroupUsage> {
  const read = (d: CgroupDir, file: string) => readFile(join(d.path, file), 'utf8').then((t) => t.trim(), () => undefined);
  const num = (t: string | undefined) => (t === undefined || t === 'max' ? undefined : Number(t));
  const usage: CgroupUsage = {};
  for (const d of dirs) {
    const has = (c: Controller) => d.controllers.includes(c);
    if (has('memory')) {
      usage.memoryBytes = num(await read(d, d.version === 2 ? 'memory.current' : 'memory.usage_in_bytes'));
      const limit = num(await read(d, d.version === 2 ? 'memory.max' : 'memory.limit_in_bytes'));
      // v1 says "unlimited" with the largest page-aligned number.
      usage.memoryLimit = limit !== undefined && limit < 2 ** 62 ? limit : undefined;
    }
    if (has('pids')) usage.pids = num(await read(d, 'pids.current'));
    if (has('cpuacct') && d.version === 1) usage.cpuNs = num(await read(d, 'cpuacct.usage'));
    if (has('cpu') && d.version === 2) {
      const m = /^usage_usec (\d+)$/m.exec((await read(d, 'cpu.stat')) ?? '');
      if (m) usage.cpuNs = Number(m[1]) * 1000;
    }
  }
  return usage;
}

/** Removes the cgroup directories (after the container's processes are gone). */
export async function removeCgroup(dirs: CgroupDir[]): Promise<void> {
  for (const d of [...dirs].reverse()) await removeCgroupDir(d.path);
}

/** rmdir, retried briefly: the kernel frees a cgroup a moment after its last process is reaped. */
async function removeCgroupDir(dir: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await rmdir(dir);
      return;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return;
      if (code !== 'EBUSY' || attempt >= 50) throw err;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

/** Parses a size like `32m`, `1g`, `512k` or plain bytes. */
export function parseSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([bkmg]?)b?$/i.exec(text.trim());
  if (!m) throw new Error(`invalid size ${text} (use e.g. 64m, 1g)`);
  const unit = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2]!.toLowerCase() as '' | 'b' | 'k' | 'm' | 'g'];
  return Math.floor(Number(m[1]) * unit);
}
