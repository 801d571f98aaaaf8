// Containers on disk: `<root>/containers/<id>/state.json` plus the container's
// writable layer (upper/ and work/ for overlayfs, or a merged rootfs/ copy). The state
// file is rewritten whole (write then rename) at each change of status, so a reader
// never sees half of it. `berth ps`, `prune` and the layer reference counting read it.

import { randomBytes } from 'node:crypto';
import { mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { processAlive, type RuntimeStore } from './store.js';

export type RootfsMode = 'overlay' | 'copy';

export interface ContainerState {
  id: string;
  name: string;
  /** The image as the user named it, and the manifest digest it resolved to. */
  image: string;
  imageId: string;
  /** Diff ids of the image's layers, bottom first: the layers this container keeps in use. */
  layers: string[];
  command: string[];
  rootfs: RootfsMode;
  autoRemove: boolean;
  created: string;
  status: 'created' | 'running' | 'exited';
  /** Host pid of the container's PID 1 while it runs. */
  pid?: number;
  exitCode?: number;
  oomKilled?: boolean;
  finished?: string;
}

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

export class Containers {
  constructor(private readonly store: RuntimeStore) {}

  dir(id: string): string {
    return join(this.store.containers, id);
  }

  /** Creates the container's directory and first state; names must be unique. */
  async create(fields: Omit<ContainerState, 'id' | 'name' | 'created' | 'status'> & { name?: string }): Promise<ContainerState> {
    const id = randomBytes(32).toString('hex');
    const name = fields.name ?? `berth-${id.slice(0, 12)}`;
    if (!NAME_RE.test(name)) throw new Error(`invalid container name ${name} (letters, digits, _ . -)`);
    const state: ContainerState = { ...fields, id, name, created: new Date().toISOString(), status: 'created' };
    await this.store.withLock(async () => {
      if ((await this.list()).some((c) => c.name === name)) throw new Error(`a container named ${name} already exists (berth prune removes stopped ones)`);
      await mkdir(this.dir(id), { recursive: true });
      await this.save(state);
    });
    return state;
  }

  async save(state: ContainerState): Promise<void> {
    const tmp = join(this.dir(state.id), 'state.json.tmp');
    await writeFile(tmp, JSON.stringify(state, null, 2));
    await rename(tmp, join(this.dir(state.id), 'state.json'));
  }

  /** Every container, with a `running` whose process is gone reported as exited. */
  async list(): Promise<ContainerState[]> {
    const out: ContainerState[] = [];
    for (const id of await readdir(this.store.containers).catch(() => [] as string[])) {
      const state = await readFile(join(this.dir(id), 'state.json'), 'utf8').then(
        (t) => JSON.parse(t) as ContainerState,
        () => undefined,
      );
      if (!state) continue;
      // While it runs, its PID 1 is known from the pid file the setup script writes.
      state.pid ??= Number(await readFile(join(this.dir(id), 'pid'), 'utf8').catch(() => '')) || undefined;
      if (state.status === 'running' && (!state.pid || !processAlive(state.pid))) state.status = 'exited';
      out.push(state);
    }
    return out.sort((a, b) => b.created.localeCompare(a.created));
  }

  /** Finds a container by name, full id or id prefix. */
  async find(idOrName: string): Promise<ContainerState | undefined> {
    const all = await this.list();
    return all.find((c) => c.name === idOrName || c.id === idOrName) ?? single(all.filter((c) => c.id.startsWith(idOrName)));
  }

  async remove(id: string): Promise<void> {
    await rm(this.dir(id), { recursive: true, force: true });
  }
}

function single<T>(xs: T[]): T | undefined {
  return xs.length === 1 ? xs[0] : undefined;
}
