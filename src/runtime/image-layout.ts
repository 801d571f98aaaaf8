// Reading an image to run out of an OCI image layout (index.json + blobs/): the runtime's
// only input. A reference names an entry of index.json by its
// `org.opencontainers.image.ref.name` annotation (or a manifest digest); an index is
// narrowed to the manifest for this host's platform; the config says how to run it.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { verifyBuffer } from '../client/digest.js';
import { type Descriptor, type ImageIndex, type ImageManifest, isIndexType } from '../client/media-types.js';

export const REF_NAME = 'org.opencontainers.image.ref.name';

/** The parts of an OCI/Docker image config the runtime uses. */
export interface ImageConfig {
  architecture?: string;
  os?: string;
  created?: string;
  config?: {
    Entrypoint?: string[] | null;
    Cmd?: string[] | null;
    Env?: string[] | null;
    WorkingDir?: string;
    User?: string;
    Hostname?: string;
  };
  rootfs: { type: string; diff_ids: string[] };
}

export interface LayerRef {
  diffId: string;
  /** The compressed (or plain) blob in the layout. */
  blob: string;
  digest: string;
  size: number;
}

export interface ResolvedImage {
  /** Digest of the platform manifest (the image id, as registries show it). */
  manifestDigest: string;
  /** Digest of the index.json entry the reference picked (an index or the manifest). */
  topDigest: string;
  configDigest: string;
  config: ImageConfig;
  layers: LayerRef[];
}

export interface LayoutIndex {
  schemaVersion: 2;
  mediaType?: string;
  manifests: Descriptor[];
}

export function blobPath(layout: string, digest: string): string {
  const [alg, hex] = digest.split(':');
  if (!alg || !hex || !/^[a-z0-9]+$/.test(alg) || !/^[a-zA-Z0-9=_-]+$/.test(hex)) throw new Error(`invalid digest ${digest}`);
  return join(layout, 'blobs', alg, hex);
}

export async function readLayoutIndex(layout: string): Promise<LayoutIndex> {
  try {
    return JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as LayoutIndex;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { schemaVersion: 2, manifests: [] };
    throw err;
  }
}

/** Reads a small JSON blob (manifest, index, config), checking its digest. */
async function readJsonBlob<T>(layout: string, desc: { digest: string; size?: number }): Promise<T> {
  const raw = await readFile(blobPath(layout, desc.digest));
  verifyBuffer(raw, desc.digest, desc.size);
  return JSON.parse(raw.toString('utf8')) as T;
}

/** Node's architecture names to the OCI ones. */
export function hostPlatform(): { os: string; architecture: string } {
  const arch: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };
  return { os: 'linux', architecture: arch[process.arch] ?? process.arch };
}

/** The index.json entry for `ref` (a ref name or a digest), or undefined. */
export function findEntry(index: LayoutIndex, ref: string): Descriptor | undefined {
  return index.manifests.find((m) => m.annotations?.[REF_NAME] === ref) ?? index.manifests.find((m) => m.digest === ref);
}

/** Resolves `ref` in the layout to this host's image: manifest, config and layer blobs. */
export async function resolveImage(layout: string, ref: string): Promise<ResolvedImage> {
  const entry = findEntry(await readLayoutIndex(layout), ref);
  if (!entry) throw new Error(`image ${ref} is not in ${layout}`);
  let desc: Descriptor = entry;
  if (isIndexType(desc.mediaType)) {
    const index = await readJsonBlob<ImageIndex>(layout, desc);
    const want = hostPlatform();
    const match = index.manifests.find((m) => m.platform?.os === want.os && m.platform.architecture === want.architecture);
    if (!match) {
      const have = index.manifests.map((m) => `${m.platform?.os}/${m.platform?.architecture}`).join(', ');
      throw new Error(`image ${ref} has no ${want.os}/${want.architecture} variant (it has ${have || 'none'})`);
    }
    desc = match;
  }
  const manifest = await readJsonBlob<ImageManifest>(layout, desc);
  if (!manifest.config || !Array.isArray(manifest.layers)) throw new Error(`${ref} is not a runnable image (no config or layers)`);
  const config = await readJsonBlob<ImageConfig>(layout, manifest.config);
  const diffIds = config.rootfs?.diff_ids ?? [];
  if (diffIds.length !== manifest.layers.length) {
    throw new Error(`image ${ref}: config lists ${diffIds.length} diff ids for ${manifest.layers.length} layers`);
  }
  return {
    manifestDigest: desc.digest,
    topDigest: entry.digest,
    configDigest: manifest.config.digest,
    config,
    layers: manifest.layers.map((l, i) => ({ diffId: diffIds[i]!, blob: blobPath(layout, l.digest), digest: l.digest, size: l.size })),
  };
}
