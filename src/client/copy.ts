// copyImage: the one transfer operation behind pull, push and cp. It walks the manifest
// graph from the source (picking one platform from an index unless asked for all),
// copies every blob with bounded concurrency (each blob resumable and retried), then
// stores manifests children first, so a destination never holds a manifest whose
// content it does not have.

import type { ImageDestination, ImageSource, TransferContext } from './endpoints.js';
import { children, isIndexType, type Descriptor, type FetchedManifest, type ImageIndex, type ImageManifest, type Platform } from './media-types.js';
import { formatPlatform, hostPlatform, pickPlatform } from './platform.js';

export interface CopyOptions extends TransferContext {
  /** Platform to take from an index; default the host's. Ignored with `allPlatforms`. */
  platform?: Platform;
  /** Copy an index and every manifest in it (the digest stays the same). */
  allPlatforms?: boolean;
  /** Blobs in flight at once (default 4). */
  concurrency?: number;
  /** The digest the destination names (`repo@sha256:...`): the image copied must have it. */
  expectDigest?: string;
}

export interface CopyResult {
  /** Digest of the manifest (or index) stored at the destination's tag. */
  digest: string;
  /** Its digest at the source: differs from `digest` when a layout got the OCI form of a Docker manifest. */
  sourceDigest: string;
  mediaType: string;
  /** The top manifest, exactly as stored. */
  manifest: FetchedManifest;
  /** When a platform was picked out of an index: that index's digest. */
  indexDigest?: string;
  blobs: number;
  bytes: number;
}

/**
 * Copies `reference` (a tag, a digest, or '' for an OCI layout's only image) from
 * `source` to `destination`, storing the top manifest under `tag` when given.
 */
export async function copyImage(
  source: ImageSource,
  reference: string,
  destination: ImageDestination,
  tag: string | undefined,
  opts: CopyOptions = {},
): Promise<CopyResult> {
  let root = await source.getManifest(reference);
  let indexDigest: string | undefined;
  if (isIndexType(root.mediaType) && !opts.allPlatforms) {
    const want = opts.platform ?? hostPlatform();
    const entries = (root.parsed as ImageIndex).manifests ?? [];
    const picked = pickPlatform(entries, want);
    if (!picked) {
      const have = entries.flatMap((m) => (m.platform ? [formatPlatform(m.platform)] : [])).join(', ');
      throw new Error(`${source.name}:${reference || 'latest'} has no image for ${formatPlatform(want)} (it has: ${have || 'none'})`);
    }
    indexDigest = root.digest;
    root = await source.getManifest(picked.digest);
  } else if (!isIndexType(root.mediaType) && opts.platform) {
    await checkPlatform(source, reference, root, opts.platform);
  }
  if (opts.expectDigest && opts.expectDigest !== root.digest && opts.expectDigest !== indexDigest) {
    throw new Error(
      `the destination names ${opts.expectDigest} but the image is ${indexDigest ?? root.digest}: ` +
        'leave the digest out of the destination or name the image it has',
    );
  }

  // Post-order walk: every manifest after the manifests it references.
  const manifests: FetchedManifest[] = [];
  const blobs = new Map<string, Descriptor>();
  const seen = new Set<string>();
  const walk = async (m: FetchedManifest): Promise<void> => {
    if (seen.has(m.digest)) return;
    seen.add(m.digest);
    const { blobs: b, manifests: childDescs } = children(m);
    for (const d of b) blobs.set(d.digest, d);
    for (const child of childDescs) await walk(await source.getManifest(child.digest));
    manifests.push(m);
  };
  await walk(root);

  const bytes = [...blobs.values()].reduce((n, d) => n + d.size, 0);
  opts.onProgress?.({ type: 'plan', blobs: blobs.size, bytes });
  await runPool([...blobs.values()], opts.concurrency ?? 4, (desc) => destination.putBlob(desc, source, opts));
  let stored = root.digest;
  for (const m of manifests) {
    const digest = await destination.putManifest(m, { root: m === root, tag }, opts);
    if (m === root) stored = digest;
  }
  await destination.finish?.();
  return { digest: stored, sourceDigest: root.digest, mediaType: root.mediaType, manifest: root, indexDigest, blobs: blobs.size, bytes };
}

/** Image configs are small; a larger one is not an image config. */
const MAX_CONFIG_BYTES = 4 * 1024 * 1024;

/** A single-platform image asked for with --platform must be for that platform. */
async function checkPlatform(source: ImageSource, reference: string, m: FetchedManifest, want: Platform): Promise<void> {
  const config = (m.parsed as ImageManifest).config;
  if (!config || !/image\.config|container\.image/.test(config.mediaType) || config.size > MAX_CONFIG_BYTES) return;
  const chunks: Buffer[] = [];
  for await (const chunk of await source.openBlob(config, 0)) chunks.push(chunk as Buffer);
  const parsed = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Partial<Platform>;
  if (!parsed.os || !parsed.architecture) return;
  const have: Platform = { os: parsed.os, architecture: parsed.architecture, ...(parsed.variant ? { variant: parsed.variant } : {}) };
  if (!pickPlatform([{ ...config, platform: have }], want)) {
    throw new Error(
      `${source.name}${reference ? `:${reference}` : ''} has no image for ${formatPlatform(want)} (it has: ${formatPlatform(have)}); ` +
        'leave out --platform to take it as it is',
    );
  }
}

/** Runs `fn` over `items` with at most `limit` at once; the first failure stops new work and is thrown. */
async function runPool<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed: unknown;
  const worker = async () => {
    while (failed === undefined && next < items.length) {
      const item = items[next++]!;
      try {
        await fn(item);
      } catch (err) {
        failed ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (failed !== undefined) throw failed;
}
