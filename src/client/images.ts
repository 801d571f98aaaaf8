// The high-level operations, by reference string: pull to a directory, push from a
// directory or archive, copy between registries, and the small ones (resolve, tag,
// delete). Each is copyImage or a RegistryClient call with the reference parsed and a
// client made for its registry.

import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { copyImage, type CopyOptions, type CopyResult } from './copy.js';
import { exportDockerArchive, importDockerArchive } from './docker-archive.js';
import { LayoutDestination, LayoutSource, RegistryDestination, RegistrySource, type RegistryDestinationOptions } from './endpoints.js';
import { RegistryHttpError } from './errors.js';
import { OciLayout } from './layout.js';
import { type Descriptor, type FetchedManifest, type Platform } from './media-types.js';
import { parsePlatform } from './platform.js';
import { formatReference, manifestReference, parseReference, type Reference } from './reference.js';
import { RegistryClient, type ClientOptions } from './registry-client.js';

export interface TransferOptions extends ClientOptions, Omit<CopyOptions, 'platform'> {
  /** `linux/arm64` or a Platform; default the host's. */
  platform?: string | Platform;
  upload?: RegistryDestinationOptions;
}

function copyOptions(opts: TransferOptions): CopyOptions {
  const platform = typeof opts.platform === 'string' ? parsePlatform(opts.platform) : opts.platform;
  return { ...opts, platform };
}

/** A client for a registry (`host[:port]`); clients cache tokens, so reuse one per registry. */
export function connect(registry: string, opts: ClientOptions = {}): RegistryClient {
  return new RegistryClient(registry, opts);
}

export interface PullOptions extends TransferOptions {
  /** Name of the image in the layout's index.json; default the reference's tag. */
  tag?: string;
}

/**
 * Pulls `ref` (`host:port/repo:tag` or `...@sha256:...`) into the OCI image layout at
 * `layoutDir` (created when missing; other images in it are kept). From an index it takes
 * the `platform` (default: the host's) unless `allPlatforms`. Blobs are verified, fetched
 * concurrently and resumed after an interruption, also by a later call with the same
 * directory. Returns the digest of the manifest now tagged in the layout.
 */
export async function pull(ref: string, layoutDir: string, opts: PullOptions = {}): Promise<CopyResult> {
  const r = parseReference(ref);
  const client = connect(r.registry, opts);
  const layout = await OciLayout.create(layoutDir);
  return copyImage(new RegistrySource(client, r.repository), manifestReference(r), new LayoutDestination(layout), opts.tag ?? r.tag, copyOptions(opts));
}

export interface PushOptions extends TransferOptions {
  /** Which image of the layout or archive: a tag in index.json / a RepoTags entry. Default: the only one, else the target's tag. */
  sourceTag?: string;
}

/** Pushes the image of an OCI layout directory to `ref`. */
export async function push(layoutDir: string, ref: string, opts: PushOptions = {}): Promise<CopyResult> {
  const r = parseReference(ref);
  const layout = await OciLayout.open(layoutDir);
  let sourceTag = opts.sourceTag;
  if (!sourceTag) {
    const tags = await layout.tags();
    const { manifests } = await layout.readIndex();
    // One image: push it whatever its tag; several: the one with the target's tag.
    sourceTag = manifests.length === 1 ? '' : (r.tag && tags.includes(r.tag) ? r.tag : undefined);
    if (sourceTag === undefined) await layout.resolve(); // throws, listing the tags to choose from
  }
  const client = connect(r.registry, opts);
  const dest = new RegistryDestination(client, r.repository, opts.upload);
  return copyImage(new LayoutSource(layout), sourceTag ?? '', dest, r.tag, { ...copyOptions(opts), allPlatforms: opts.allPlatforms ?? true });
}

/** Pushes an image from a `docker save` archive to `ref` (`sourceTag` picks one of several images by RepoTags). */
export async function pushDockerArchive(archive: string, ref: string, opts: PushOptions = {}): Promise<CopyResult> {
  const scratch = await mkdtemp(join(tmpdir(), 'berth-push-'));
  try {
    const imported = await importDockerArchive(archive, scratch, { image: opts.sourceTag });
    return await push(scratch, ref, { ...opts, sourceTag: imported.tag });
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

/** Pushes a directory (OCI layout) or a file (docker archive), whichever `path` is. */
export async function pushPath(path: string, ref: string, opts: PushOptions = {}): Promise<CopyResult> {
  return (await stat(path)).isDirectory() ? push(path, ref, opts) : pushDockerArchive(path, ref, opts);
}

/** Pulls one platform's image of `ref` into a `docker save` archive at `file`. */
export async function pullDockerArchive(ref: string, file: string, opts: PullOptions = {}): Promise<CopyResult> {
  const r = parseReference(ref);
  const scratch = await mkdtemp(join(tmpdir(), 'berth-pull-'));
  try {
    const result = await pull(ref, scratch, { ...opts, allPlatforms: false });
    const repoTags = r.tag ? [`${r.registry}/${r.repository}:${r.tag}`] : [];
    await exportDockerArchive(await OciLayout.open(scratch), result.digest, file, repoTags);
    return result;
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

/**
 * Copies `from` to `to`, registry to registry. Blobs the target has are skipped; on the
 * same registry they are mounted (`POST ?mount=&from=`) instead of uploaded. An index is
 * copied whole (the digest stays the same) unless `platform` is given.
 */
export async function copy(from: string, to: string, opts: TransferOptions = {}): Promise<CopyResult> {
  const src = parseReference(from);
  const dst = parseReference(to, { defaultTag: src.tag ?? 'latest' });
  const srcClient = connect(src.registry, opts);
  const dstClient = src.registry === dst.registry ? srcClient : connect(dst.registry, opts);
  return copyImage(
    new RegistrySource(srcClient, src.repository),
    manifestReference(src),
    new RegistryDestination(dstClient, dst.repository, opts.upload),
    dst.tag,
    { ...copyOptions(opts), allPlatforms: opts.allPlatforms ?? !opts.platform },
  );
}

/** The manifest (or index) `ref` names, exactly as the registry stores it. */
export async function getManifest(ref: string, opts: ClientOptions = {}): Promise<FetchedManifest & { reference: Reference }> {
  const r = parseReference(ref);
  const m = await connect(r.registry, opts).getManifest(r.repository, manifestReference(r));
  return { ...m, reference: r };
}

/** The digest `ref` resolves to (a HEAD request; the index digest for a multi-platform tag). */
export async function resolveDigest(ref: string, opts: ClientOptions = {}): Promise<Descriptor> {
  const r = parseReference(ref);
  const desc = await connect(r.registry, opts).headManifest(r.repository, manifestReference(r));
  if (!desc) throw new RegistryHttpError(`${formatReference(r)}: manifest unknown`, 404, r.registry, ['MANIFEST_UNKNOWN']);
  return desc;
}

/** Gives the manifest `ref` names another tag in the same repository; no blob moves. */
export async function tag(ref: string, newTag: string, opts: ClientOptions = {}): Promise<string> {
  const r = parseReference(ref);
  const client = connect(r.registry, opts);
  const m = await client.getManifest(r.repository, manifestReference(r));
  return client.putManifest(r.repository, newTag, m.raw, m.mediaType);
}

/**
 * Deletes `ref`: by digest, the manifest; by tag, just the tag. A registry that cannot
 * delete a tag alone (the reference registry) is an error that names the digest, since
 * deleting that would remove every tag on it.
 */
export async function remove(ref: string, opts: ClientOptions = {}): Promise<void> {
  const r = parseReference(ref);
  const client = connect(r.registry, opts);
  try {
    await client.deleteManifest(r.repository, manifestReference(r));
  } catch (err) {
    if (r.digest || !(err instanceof RegistryHttpError) || ![400, 404, 405].includes(err.status) || err.has('MANIFEST_UNKNOWN')) throw err;
    const desc = await client.headManifest(r.repository, r.tag!);
    if (!desc) throw err;
    throw new RegistryHttpError(
      `${r.registry} cannot delete the tag ${r.tag} alone (it answered ${err.status}); ` +
        `\`berth rm ${r.registry}/${r.repository}@${desc.digest}\` deletes the manifest and every tag on it`,
      err.status,
      r.registry,
      err.codes,
    );
  }
}

