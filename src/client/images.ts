// The high-level operations, by reference string: pull to a directory, push from a
// directory or archive, copy between registries (each a `transfer`), and the small ones
// (resolve, tag, delete), a RegistryClient call with the reference parsed and a client
// made for its registry.

import type { CopyResult } from './copy.js';
import { RegistryHttpError } from './errors.js';
import type { Descriptor, FetchedManifest } from './media-types.js';
import { formatReference, manifestReference, parseReference, type Reference } from './reference.js';
import type { ClientOptions } from './registry-client.js';
import { connect, transfer, type TransferOptions } from './transfer.js';

/** `tag`: the name of the image in the layout's index.json; default the reference's tag. */
export type PullOptions = TransferOptions;

/**
 * Pulls `ref` (`host:port/repo:tag` or `...@sha256:...`) into the OCI image layout at
 * `layoutDir` (created when missing; other images in it are kept), Docker manifests in
 * their OCI form. From an index it takes the `platform` (default: the host's) unless
 * `allPlatforms`. Blobs are verified, fetched concurrently and resumed after an
 * interruption, also by a later call with the same directory. Returns the digest of the
 * manifest now tagged in the layout.
 */
export function pull(ref: string, layoutDir: string, opts: PullOptions = {}): Promise<CopyResult> {
  return transfer(ref, { transport: 'oci', path: layoutDir, tag: opts.tag }, opts);
}

export type PushOptions = TransferOptions;

/** Pushes the image of an OCI layout directory to `ref` (its only image, or `sourceTag`, or the one with ref's tag). */
export function push(layoutDir: string, ref: string, opts: PushOptions = {}): Promise<CopyResult> {
  return transfer({ transport: 'oci', path: layoutDir }, ref, opts);
}

/** Pushes an image from a `docker save` archive to `ref` (`sourceTag` picks one of several images by RepoTags). */
export function pushDockerArchive(archive: string, ref: string, opts: PushOptions = {}): Promise<CopyResult> {
  return transfer({ transport: 'docker-archive', path: archive, name: opts.sourceTag }, ref, opts);
}

/** Pulls one platform's image of `ref` into a `docker save` archive at `file`. */
export function pullDockerArchive(ref: string, file: string, opts: PullOptions = {}): Promise<CopyResult> {
  return transfer(ref, { transport: 'docker-archive', path: file }, opts);
}

/**
 * Copies `from` to `to`, registry to registry. Blobs the target has are skipped; on the
 * same registry they are mounted (`POST ?mount=&from=`) instead of uploaded. An index is
 * copied whole (the digest stays the same) unless `platform` is given.
 */
export function copy(from: string, to: string, opts: TransferOptions = {}): Promise<CopyResult> {
  return transfer(from, to, opts);
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
        `\`berth delete ${r.registry}/${r.repository}@${desc.digest}\` deletes the manifest and every tag on it`,
      err.status,
      r.registry,
      err.codes,
    );
  }
}

