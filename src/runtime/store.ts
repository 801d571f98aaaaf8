// The runtime's local store, under one root directory (`--root`):
//
//   <root>/images/                 an OCI image layout: the images pulled for running
//   <root>/layers/<alg>/<hex>/     one unpacked layer per diff id, shared by every image
//       diff/                      its files, in overlayfs form (whiteouts as 0/0 devices)
//       layer.json                 diff id, size, opaque dirs and whiteouts (for the copy mode)
//   <root>/layers/tmp/             layers being unpacked (renamed into place when verified)
//   <root>/containers/<id>/        one container: state.json, upper/, work/, rootfs/
//
// A layer is unpacked once, into a temporary directory, and renamed into place only
// after its diff id checked out: a layer directory that exists is complete. Two runs
// unpacking the same layer at once both finish; the second rename loses and is removed.

import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, readdir, rename, rm, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { OciLayout } from '../client/layout.js';
import type { LayerRef } from './image-layout.js';
import { unpackLayer } from './unpack.js';

export const DEFAULT_ROOT = '/var/lib/berth/runtime';

export interface LayerInfo {
  diffId: string;
  /** Uncompressed size in bytes. */
  size: number;
  opaque: string[];
  whiteouts: string[];
  unpackedAt: string;
}

/** An unpacked layer ready to stack. */
export interface UnpackedLayer extends LayerInfo {
  /** The directory holding the layer's files. */
  diff: string;
}

export class RuntimeStore {
  readonly images: string;
  readonly layers: string;
  readonly containers: string;

  constructor(readonly root: string = DEFAULT_ROOT) {
    this.images = join(root, 'images');
    this.layers = join(root, 'layers');
    this.containers = join(root, 'containers');
  }

  async init(): Promise<void> {
    await OciLayout.create(this.images);
    await mkdir(join(this.layers, 'tmp'), { recursive: true });
    await mkdir(this.containers, { recursive: true });
  }

  layerDir(diffId: string): string {
    const [alg, hex] = diffId.split(':');
    if (!alg || !hex || !/^[a-z0-9]+$/.test(alg) || !/^[a-f0-9]+$/.test(hex)) throw new Error(`invalid diff id ${diffId}`);
    return join(this.layers, alg, hex);
  }

  async readLayer(diffId: string): Promise<UnpackedLayer | undefined> {
    const dir = this.layerDir(diffId);
    try {
      const info = JSON.parse(await readFile(join(dir, 'layer.json'), 'utf8')) as LayerInfo;
      return { ...info, diff: join(dir, 'diff') };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  /**
   * Unpacks each layer not unpacked yet, bottom to top. `onUnpack` is told about each
   * layer actually unpacked (not the ones already there), so callers can show progress.
   */
  async ensureLayers(layers: LayerRef[], onUnpack?: (layer: LayerRef) => void): Promise<UnpackedLayer[]> {
    const out: UnpackedLayer[] = [];
    for (const layer of layers) {
      out.push((await this.readLayer(layer.diffId)) ?? (await this.unpack(layer, onUnpack)));
    }
    return out;
  }

  private async unpack(layer: LayerRef, onUnpack?: (layer: LayerRef) => void): Promise<UnpackedLayer> {
    onUnpack?.(layer);
    const tmp = join(this.layers, 'tmp', randomBytes(8).toString('hex'));
    const final = this.layerDir(layer.diffId);
    try {
      await mkdir(join(tmp, 'diff'), { recursive: true });
      const result = await unpackLayer(layer.blob, layer.diffId, join(tmp, 'diff'));
      const info: LayerInfo = { diffId: layer.diffId, ...result, unpackedAt: new Date().toISOString() };
      await writeFile(join(tmp, 'layer.json'), JSON.stringify(info));
      await mkdir(join(final, '..'), { recursive: true });
      try {
        await rename(tmp, final);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
        // Another run unpacked the same layer meanwhile; use theirs.
      }
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
    const done = await this.readLayer(layer.diffId);
    if (!done) throw new Error(`layer ${layer.diffId} vanished after unpacking`);
    return done;
  }

  async listLayers(): Promise<UnpackedLayer[]> {
    const out: UnpackedLayer[] = [];
    for (const alg of await readdir(this.layers).catch(() => [] as string[])) {
      if (alg === 'tmp') continue;
      for (const hex of await readdir(join(this.layers, alg))) {
        const layer = await this.readLayer(`${alg}:${hex}`).catch(() => undefined);
        if (layer) out.push(layer);
      }
    }
    return out;
  }

  async removeLayer(diffId: string): Promise<void> {
    await rm(this.layerDir(diffId), { recursive: true, force: true });
  }

  /**
   * Runs `fn` holding the store's lock (a lock file made with O_EXCL), so concurrent
   * pulls, rmi and prune do not lose each other's index.json updates. A lock left by a
   * dead process is taken over.
   */
  async withLock<T>(fn: () => Promise<T>): Promise<T> {
    const lock = join(this.root, 'lock');
    for (let attempt = 0; ; attempt++) {
      try {
        const fh = await open(lock, 'wx');
        await fh.writeFile(String(process.pid));
        await fh.close();
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        const holder = Number(await readFile(lock, 'utf8').catch(() => ''));
        if (holder && !processAlive(holder)) await unlink(lock).catch(() => undefined);
        else if (attempt > 300) throw new Error(`the store ${this.root} is locked by process ${holder}`);
        else await new Promise((r) => setTimeout(r, 100));
      }
    }
    try {
      return await fn();
    } finally {
      await unlink(lock).catch(() => undefined);
    }
  }
}

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
