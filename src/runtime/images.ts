// The images of the local store (`<root>/images`, an OCI image layout): pulled through
// the client module, named in index.json by their full reference
// (`host:port/repo:tag`, so two registries' `latest` never collide), listed, removed,
// and garbage-collected with the unpacked layers and stopped containers (`prune`).

import { readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { OciLayout, pull, type CopyResult, type PullOptions } from '../client/index.js';
import { formatReference, parseReference } from '../client/reference.js';
import { isIndexType, type Descriptor, type ImageIndex, type ImageManifest } from '../client/media-types.js';
import { Containers } from './containers.js';
import { findEntry, REF_NAME, resolveImage } from './image-layout.js';
import type { RuntimeStore } from './store.js';

/** The store's name for an image reference: `busybox` -> `docker.io/library/busybox:latest`. */
export function imageName(ref: string): string {
  return formatReference(parseReference(ref));
}

export async function hasImage(store: RuntimeStore, name: string): Promise<boolean> {
  await store.init();
  const layout = await OciLayout.create(store.images);
  return findEntry((await layout.readIndex()).manifests, name) !== undefined;
}

/** Pulls `name` (a full reference) into the store, for this host's platform. */
export async function pullImage(store: RuntimeStore, name: string, opts: PullOptions = {}): Promise<CopyResult> {
  await store.init();
  return store.withLock(() => pull(name, store.images, { ...opts, tag: name, allPlatforms: false }));
}

export interface ImageSummary {
  name: string;
  /** Digest of the manifest for this host (the image id). */
  id: string;
  created?: string;
  /** Compressed size of its layers. */
  size: number;
}

export async function listImages(store: RuntimeStore): Promise<ImageSummary[]> {
  await store.init();
  const layout = await OciLayout.create(store.images);
  const out: ImageSummary[] = [];
  for (const entry of (await layout.readIndex()).manifests) {
    const name = entry.annotations?.[REF_NAME] ?? entry.digest;
    const image = await resolveImage(store.images, name).catch(() => undefined);
    out.push({
      name,
      id: image?.manifestDigest ?? entry.digest,
      created: image?.config.created,
      size: image?.layers.reduce((n, l) => n + l.size, 0) ?? 0,
    });
  }
  return out;
}

async function writeIndex(store: RuntimeStore, index: ImageIndex): Promise<void> {
  const path = join(store.images, 'index.json');
  await writeFile(`${path}.tmp`, JSON.stringify(index));
  await rename(`${path}.tmp`, path);
}

/**
 * Removes an image from the store by name (as given or as a full reference) or id.
 * Its blobs go unless another image uses them; unpacked layers stay until `prune`.
 */
export async function removeImage(store: RuntimeStore, nameOrId: string, opts: { force?: boolean } = {}): Promise<string> {
  await store.init();
  return store.withLock(async () => {
    const layout = await OciLayout.create(store.images);
    const index = await layout.readIndex();
    const candidates = [nameOrId, ...safe(() => imageName(nameOrId))];
    const entry =
      index.manifests.find((m) => candidates.includes(m.annotations?.[REF_NAME] ?? '')) ??
      index.manifests.find((m) => m.digest === nameOrId || m.digest.slice(m.digest.indexOf(':') + 1).startsWith(nameOrId));
    if (!entry) throw new Error(`no image ${nameOrId} in ${store.root} (see berth images)`);
    const name = entry.annotations?.[REF_NAME];
    const users = (await new Containers(store).list()).filter((c) => c.image === name || c.imageId === entry.digest);
    if (users.length > 0 && !opts.force) {
      throw new Error(`image ${name ?? entry.digest} is used by container ${users.map((c) => c.name).join(', ')}: remove ${users.length > 1 ? 'them' : 'it'} first (berth rm), or use rmi -f`);
    }
    index.manifests = index.manifests.filter((m) => m !== entry);
    await writeIndex(store, index);
    await collectBlobs(store, layout, index.manifests);
    return entry.annotations?.[REF_NAME] ?? entry.digest;
  });
}

function safe<T>(fn: () => T): T[] {
  try {
    return [fn()];
  } catch {
    return [];
  }
}

/** Deletes the blobs of the store's layout that no remaining index.json entry reaches. */
async function collectBlobs(store: RuntimeStore, layout: OciLayout, roots: Descriptor[]): Promise<number> {
  const keep = new Set<string>();
  const visit = async (desc: Descriptor): Promise<void> => {
    if (keep.has(desc.digest)) return;
    keep.add(desc.digest);
    const parsed = JSON.parse((await layout.readBlob(desc.digest)).toString('utf8')) as ImageIndex & ImageManifest;
    if (isIndexType(desc.mediaType) || Array.isArray(parsed.manifests)) {
      for (const m of parsed.manifests ?? []) if (await layout.hasBlob(m.digest)) await visit(m);
    } else {
      for (const b of [parsed.config, ...(parsed.layers ?? [])]) if (b) keep.add(b.digest);
    }
  };
  for (const root of roots) await visit(root);
  let removed = 0;
  for (const alg of await readdir(join(store.images, 'blobs'))) {
    for (const hex of await readdir(join(store.images, 'blobs', alg))) {
      if (keep.has(`${alg}:${hex}`)) continue;
      await rm(join(store.images, 'blobs', alg, hex), { force: true });
      removed++;
    }
  }
  return removed;
}

export interface PruneResult {
  containers: string[];
  layers: string[];
  blobs: number;
}

/**
 * Removes stopped containers, then unpacked layers that no image of the store and no
 * remaining container uses, then blobs nothing references.
 */
export async function pruneStore(store: RuntimeStore): Promise<PruneResult> {
  await store.init();
  return store.withLock(async () => {
    const containers = new Containers(store);
    const removed: string[] = [];
    const inUse = new Set<string>();
    for (const c of await containers.list()) {
      if (c.status === 'exited') {
        await containers.remove(c.id);
        removed.push(c.name);
      } else {
        c.layers.forEach((l) => inUse.add(l));
      }
    }
    const layout = await OciLayout.create(store.images);
    const { manifests } = await layout.readIndex();
    for (const entry of manifests) {
      const image = await resolveImage(store.images, entry.annotations?.[REF_NAME] ?? entry.digest).catch(() => undefined);
      image?.layers.forEach((l) => inUse.add(l.diffId));
    }
    const layers: string[] = [];
    for (const layer of await store.listLayers()) {
      if (inUse.has(layer.diffId)) continue;
      await store.removeLayer(layer.diffId);
      layers.push(layer.diffId);
    }
    // Unpacks that crashed leave their temporary directory; an hour-old one is not in progress.
    for (const tmp of await readdir(join(store.layers, 'tmp'))) {
      const st = await stat(join(store.layers, 'tmp', tmp)).catch(() => undefined);
      if (st && Date.now() - st.mtimeMs > 3_600_000) await rm(join(store.layers, 'tmp', tmp), { recursive: true, force: true });
    }
    const blobs = await collectBlobs(store, layout, manifests);
    return { containers: removed, layers, blobs };
  });
}
