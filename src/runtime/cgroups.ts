// Resource limits through cgroups, v2 or v1, whichever the host has for each
// controller: a host may mount cgroup2 and still keep memory, pids and cpu on v1
// hierarchies (the hybrid layout), so each controller is looked up on its own. A
// container gets `berth/<id>` under each hierarchy it needs; the setup script moves the
// container's first process into it before anything else runs, so every process of the
// container is limited from the start.

import { readFile, rmdir, writeFile, access, mkdir } from 'node:fs/promises';
import { join } from 'node:path';

export interface Limits {
  /** Bytes. */
  memory?: number;
  /** CPUs, fractional (0.5 = half of one CPU). */
  cpus?: number;
  pids?: number;
}

type Controller = 'memory' | 'cpu' | 'pids';

interface Hierarchy {
  version: 1 | 2;
  mount: string;
}

export interface Cgroup {
  /** The `cgroup.procs` files the container's first process writes itself into. */
  procsFiles: string[];
  /** True when the kernel's OOM killer killed a process of the container. */
  oomKilled(): Promise<boolean>;
  /** Removes the cgroup directories (after the container's processes are gone). */
  remove(): Promise<void>;
}

/** Where each controller is mounted: v2 when the unified hierarchy offers it, else v1. */
async function hierarchies(): Promise<Map<Controller, Hierarchy>> {
  const found = new Map<Controller, Hierarchy>();
  const mountinfo = await readFile('/proc/self/mountinfo', 'utf8');
  const v1: { mount: string; options: string[] }[] = [];
  for (const line of mountinfo.split('\n')) {
    const [pre, post] = line.split(' - ');
    if (!pre || !post) continue;
    const mount = pre.split(' ')[4]!;
    const [fstype, , superOptions] = post.split(' ');
    if (fstype === 'cgroup2') {
      const controllers = (await readFile(join(mount, 'cgroup.controllers'), 'utf8').catch(() => '')).trim().split(/\s+/);
      for (const c of ['memory', 'cpu', 'pids'] as const) if (controllers.includes(c)) found.set(c, { version: 2, mount });
    } else if (fstype === 'cgroup') {
      v1.push({ mount, options: (superOptions ?? '').split(',') });
    }
  }
  for (const c of ['memory', 'cpu', 'pids'] as const) {
    if (found.has(c)) continue;
    const h = v1.find((m) => m.options.includes(c));
    if (h) found.set(c, { version: 1, mount: h.mount });
  }
  return found;
}

/** The limit files to write for one controller, in order (memsw needs the memory limit first). */
function limitFiles(c: Controller, version: 1 | 2, limits: Limits): [string, string][] {
  switch (c) {
    case 'memory':
      if (limits.memory === undefined) return [];
      // Swap is limited to nothing, so going over the limit means the OOM killer, not swapping.
      return version === 2
        ? [['memory.max', String(limits.memory)], ['memory.swap.max', '0']]
        : [['memory.limit_in_bytes', String(limits.memory)], ['memory.memsw.limit_in_bytes', String(limits.memory)]];
    case 'cpu': {
      if (limits.cpus === undefined) return [];
      const period = 100_000;
      const quota = Math.max(1000, Math.round(limits.cpus * period));
      return version === 2 ? [['cpu.max', `${quota} ${period}`]] : [['cpu.cfs_period_us', String(period)], ['cpu.cfs_quota_us', String(quota)]];
    }
    case 'pids':
      return limits.pids === undefined ? [] : [['pids.max', String(limits.pids)]];
  }
}

const OPTIONAL_FILES = new Set(['memory.swap.max', 'memory.memsw.limit_in_bytes']);

/**
 * Creates the container's cgroups with `limits`. Returns undefined when no limit is
 * asked for; throws, saying which, when the host lacks a controller a limit needs.
 */
export async function createCgroup(id: string, limits: Limits): Promise<Cgroup | undefined> {
  const wanted = (['memory', 'cpu', 'pids'] as const).filter((c) => limitFiles(c, 1, limits).length > 0);
  if (wanted.length === 0) return undefined;
  const hier = await hierarchies();
  const missing = wanted.filter((c) => !hier.has(c));
  if (missing.length > 0) throw new Error(`cannot limit ${missing.join(', ')}: no cgroup controller for it is mounted on this host`);

  const dirs = new Map<string, Hierarchy>();
  const created: string[] = [];
  const cgroup: Cgroup = {
    procsFiles: [],
    async oomKilled() {
      for (const [dir, h] of dirs) {
        const events = await readFile(join(dir, h.version === 2 ? 'memory.events' : 'memory.oom_control'), 'utf8').catch(() => '');
        const m = /^oom_kill (\d+)$/m.exec(events);
        if (m && Number(m[1]) > 0) return true;
      }
      return false;
    },
    async remove() {
      for (const dir of created.reverse()) await removeCgroupDir(dir);
    },
  };
  try {
    for (const c of wanted) {
      const h = hier.get(c)!;
      const parent = join(h.mount, 'berth');
      const dir = join(parent, id);
      if (!dirs.has(dir)) {
        await mkdir(parent, { recursive: true });
        if (h.version === 2) await enableV2Controllers(h.mount, parent, wanted.filter((w) => hier.get(w)?.mount === h.mount));
        await mkdir(dir);
        created.push(dir);
        dirs.set(dir, h);
        cgroup.procsFiles.push(join(dir, 'cgroup.procs'));
      }
      for (const [file, value] of limitFiles(c, h.version, limits)) {
        const path = join(dir, file);
        if (OPTIONAL_FILES.has(file) && !(await access(path).then(() => true, () => false))) continue;
        await writeFile(path, value);
      }
    }
  } catch (err) {
    await cgroup.remove();
    throw err;
  }
  return cgroup;
}

/** On v2 a controller is usable in a child only when every ancestor delegates it. */
async function enableV2Controllers(mount: string, parent: string, controllers: Controller[]): Promise<void> {
  const line = controllers.map((c) => `+${c}`).join(' ');
  await writeFile(join(mount, 'cgroup.subtree_control'), line);
  await writeFile(join(parent, 'cgroup.subtree_control'), line);
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
