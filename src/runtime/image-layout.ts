// Reading an image to run out of an OCI image layout (index.json + blobs/): the runtime's
// only input. A reference names an entry of index.json by its
// `org.opencontainers.image.ref.name` annotation (or a manifest digest); an index is
// narrowed to the manifest for this host's platform; the config says how to run it.

import { OciLayout, REF_NAME } from '../client/layout.js';
import { type Descriptor, type ImageIndex, type ImageManifest, isIndexType } from '../client/media-types.js';
import { formatPlatform, hostPlatform, pickPlatform } from '../client/platform.js';

export { REF_NAME };

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
    ExposedPorts?: Record<string, object>;
    Labels?: Record<string, string> | null;
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
  config: ImageConfig;
  layers: LayerRef[];
}

/** The index.json entry for `ref` (a ref name or a digest), or undefined. */
export function findEntry(manifests: Descriptor[], ref: string): Descriptor | undefined {
  return manifests.find((m) => m.annotations?.[REF_NAME] === ref) ?? manifests.find((m) => m.digest === ref);
}

/** Resolves `ref` in the layout to this host's image: manifest, config and layer blobs. */
export async function resolveImage(layoutDir: string, ref: string): Promise<ResolvedImage> {
  const layout = await OciLayout.open(layoutDir);
  const entry = findEntry((await layout.readIndex()).manifests, ref);
  if (!entry) throw new Error(`image ${ref} is not in ${layoutDir}`);
  // readBlob checks the digest, so what the runtime trusts is what the layout names.
  const readJson = async <T>(digest: string): Promise<T> => JSON.parse((await layout.readBlob(digest)).toString('utf8')) as T;
  let desc: Descriptor = entry;
  if (isIndexType(desc.mediaType)) {
    const index = await readJson<ImageIndex>(desc.digest);
    const want = hostPlatform();
    const match = pickPlatform(index.manifests, want);
    if (!match) {
      const have = index.manifests.flatMap((m) => (m.platform ? [formatPlatform(m.platform)] : [])).join(', ');
      throw new Error(`image ${ref} has no ${formatPlatform(want)} variant (it has ${have || 'none'})`);
    }
    desc = match;
  }
  const manifest = await readJson<ImageManifest>(desc.digest);
  if (!manifest.config || !Array.isArray(manifest.layers)) throw new Error(`${ref} is not a runnable image (no config or layers)`);
  const config = await readJson<ImageConfig>(manifest.config.digest);
  const diffIds = config.rootfs?.diff_ids ?? [];
  if (diffIds.length !== manifest.layers.length) {
    throw new Error(`image ${ref}: config lists ${diffIds.length} diff ids for ${manifest.layers.length} layers`);
  }
  return {
    manifestDigest: desc.digest,
    config,
    layers: manifest.layers.map((l, i) => ({ diffId: diffIds[i]!, blob: layout.blobPath(l.digest), digest: l.digest, size: l.size })),
  };
}
