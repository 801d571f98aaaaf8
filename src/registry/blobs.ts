// Blob rules: reads, links, mounts and the upload state machine (monolithic, streamed,
// chunked, resumed by any process). Bytes go through the BlobStore port, records
// through the MetadataStore port; this module decides what is allowed and what is an
// error.
//
// An upload session is data, not process memory: its offset lives in the metadata
// store and a request writes to it only while it holds the session's lease, so the
// POST, the PATCHes and the PUT of one upload may land on different processes. The
// running hash is cached here by upload id and offset; when another process took the
// last chunk the cache is stale and the received prefix is hashed again.

import { createHash, randomUUID, type Hash } from 'node:crypto';
import type { Readable, Writable } from 'node:stream';
import { RegistryError } from './errors.js';
import { checkName, isValidName, parseDigest, type Digest } from './names.js';
import { IncompleteBodyError, ObjectMissingError, type BlobStore, type ByteRange, type MetadataStore, type UploadSession } from '../../storage/ports.js';
import { holderIsDead, newHolder } from './leases.js';
import { publishObject } from './publish.js';
import type { TouchRecorder } from './touches.js';

/** A request body to append: the stream and what the client said about it. */
export interface Body {
  stream: Readable;
  /** Content-Length, when given. */
  length?: number;
  /** Parsed Content-Range `start-end` (inclusive), when given. */
  range?: ByteRange;
  /** Told the size of every chunk as it is taken from the stream. */
  onChunk?: (bytes: number) => void;
}

export interface UploadState {
  uuid: string;
  repository: string;
  /** Bytes received and acknowledged so far. */
  offset: number;
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** How long a blob GET's redirect URL stays valid (the reference registry's S3 redirects: 20 minutes). */
const REDIRECT_TTL_SECONDS = 20 * 60;

/** An upload's lease lasts this long unless renewed; a request renews it every third of it. */
const UPLOAD_LEASE_MS = 60_000;
/** How long a request waits for another one's lease on the same upload to be given up (ms). */
const BUSY_WAIT_MS = 2_000;

/** Running hashes kept for uploads in progress; beyond this the oldest is dropped (and rebuilt if needed). */
const HASH_CACHE_LIMIT = 1024;


export class BlobService {
  /** Running sha256 of uploads in progress, by id, with the offset it covers. */
  private readonly hashes = new Map<string, { hash: Hash; offset: number }>();

  constructor(
    private readonly meta: MetadataStore,
    private readonly store: BlobStore,
    private readonly touches: TouchRecorder | undefined,
  ) {}

  /** Size of a blob the repository may serve; BLOB_UNKNOWN otherwise. */
  async stat(repository: string, digestValue: string): Promise<{ digest: Digest; size: number }> {
    checkName(repository);
    const digest = parseDigest(digestValue);
    const size = await this.meta.blobInRepository(repository, digest.value);
    if (size === undefined) throw new RegistryError('BLOB_UNKNOWN', 'blob unknown to registry', { digest: digest.value });
    // A client that checks a blob may be about to reference it: keep it from collection.
    await this.touches?.touch(digest.value);
    return { digest, size };
  }

  /**
   * A URL the client may fetch the blob from directly (an S3 pre-signed GET, with
   * `storage.s3.redirect`), or undefined to stream it through the registry.
   */
  redirectUrl(digest: Digest): Promise<string | undefined> {
    return this.store.redirectUrl?.(digest.value, { ttlSeconds: REDIRECT_TTL_SECONDS }) ?? Promise.resolve(undefined);
  }

  /**
   * Sends the blob's bytes (or a range of them) to `out` and ends it; `onOpen` runs once
   * the object is open, so a missing object is still a clean error before any header.
   */
  async send(digest: Digest, out: Writable, range: ByteRange | undefined, onOpen: () => void): Promise<void> {
    const reader = await this.store.open(digest.value, range);
    try {
      onOpen();
    } catch (err) {
      await reader.close();
      throw err;
    }
    await reader.writeTo(out);
  }

  /**
   * Removes the blob from the repository; the object stays until garbage collection.
   * Refused (DENIED, naming them) while manifests of the repository use it: deleting it
   * would leave them pointing at a layer that answers 404.
   */
  async delete(repository: string, digestValue: string): Promise<void> {
    checkName(repository);
    const digest = parseDigest(digestValue);
    const result = await this.meta.unlinkBlob(repository, digest.value);
    if (result === 'unknown') throw new RegistryError('BLOB_UNKNOWN', 'blob unknown to registry', { digest: digest.value });
    if (result !== 'unlinked') {
      throw new RegistryError('DENIED', 'the blob is used by manifests of this repository: delete those manifests first', {
        digest: digest.value,
        manifests: result.heldBy,
      });
    }
  }

  /**
   * Cross-repository mount. Returns true when the blob is now linked in `repository`;
   * false when it cannot be mounted (unknown, or `mayReadFrom` refuses the source) and
   * the caller should start an ordinary upload instead, as the spec says.
   */
  async mount(repository: string, digestValue: string, from: string | undefined, mayReadFrom: (repo: string) => boolean): Promise<boolean> {
    checkName(repository);
    const digest = parseDigest(digestValue);
    let source = from;
    if (source !== undefined) {
      if (!isValidName(source) || (await this.meta.blobInRepository(source, digest.value)) === undefined) return false;
    } else {
      source = await this.meta.aRepositoryWithBlob(digest.value);
      if (source === undefined) return false;
    }
    if (source !== repository && !mayReadFrom(source)) return false;
    return this.meta.mountBlob(repository, digest.value);
  }

  /** A monolithic upload: the whole blob in one request, with its digest. */
  async putMonolithic(repository: string, digestValue: string, body: Body): Promise<number> {
    checkName(repository);
    const digest = parseDigest(digestValue);
    const id = randomUUID();
    await this.store.beginUpload(id);
    try {
      const hash = createHash(digest.algorithm);
      const size = await this.append(id, 0, hash, body);
      verify(digest, hash, size);
      await this.record(repository, digest, size, id, false);
      return size;
    } finally {
      await this.store.removeUpload(id);
    }
  }

  async startUpload(repository: string): Promise<UploadState> {
    checkName(repository);
    const uuid = randomUUID();
    await this.store.beginUpload(uuid);
    await this.meta.createUpload(uuid, repository);
    return { uuid, repository, offset: 0 };
  }

  async status(repository: string, uuid: string): Promise<UploadState> {
    checkName(repository);
    const session = UUID_RE.test(uuid) ? await this.meta.getUpload(uuid) : undefined;
    if (!session || session.repository !== repository) throw uploadUnknown(uuid);
    return { uuid, repository, offset: session.offset };
  }

  /** A PATCH: appends a chunk (Content-Range given) or a stream (no Content-Range). */
  patch(repository: string, uuid: string, body: Body): Promise<UploadState> {
    return this.exclusive(repository, uuid, async (session, release) => {
      const offset = await this.appendChunk(session, body);
      await release(offset);
      return { uuid, repository, offset };
    });
  }

  /** The closing PUT: an optional last chunk, then the digest check and the commit. */
  async complete(repository: string, uuid: string, digestValue: string | undefined, body: Body | undefined): Promise<{ digest: Digest; size: number }> {
    if (!digestValue) throw new RegistryError('DIGEST_INVALID', 'the digest query parameter is required to complete an upload');
    const digest = parseDigest(digestValue);
    return this.exclusive(repository, uuid, async (session) => {
      let offset = session.offset;
      // Not acknowledged until the blob is recorded: a failed commit leaves the session where it was.
      if (body) offset = await this.appendChunk(session, body);
      const cached = this.hashes.get(uuid);
      this.hashes.delete(uuid);
      let hash: Hash;
      if (digest.algorithm === 'sha256' && cached && cached.offset === offset) hash = cached.hash;
      else hash = await this.rehash(session, offset, digest.algorithm);
      try {
        verify(digest, hash, offset);
      } catch (err) {
        // A wrong digest ends the session: its bytes can never become this blob.
        await this.meta.deleteUpload(uuid);
        await this.store.removeUpload(uuid);
        throw err;
      }
      await this.record(repository, digest, offset, uuid, true);
      await this.store.removeUpload(uuid);
      return { digest, size: offset };
    });
  }

  async cancel(repository: string, uuid: string): Promise<void> {
    await this.exclusive(repository, uuid, async () => {
      this.hashes.delete(uuid);
      await this.meta.deleteUpload(uuid);
      await this.store.removeUpload(uuid);
    });
  }

  /**
   * Runs `work` holding the session's lease (renewed while it runs). `release(offset)`
   * records the new acknowledged offset and gives the lease up; otherwise it is given
   * up at the end. A live lease of another request is BLOB_UPLOAD_INVALID.
   */
  private async exclusive<T>(
    repository: string,
    uuid: string,
    work: (session: UploadSession, release: (offset: number) => Promise<void>) => Promise<T>,
  ): Promise<T> {
    checkName(repository);
    const holder = newHolder();
    const lease = { holder, ttlMs: UPLOAD_LEASE_MS };
    let session = UUID_RE.test(uuid) ? await this.meta.leaseUpload(uuid, lease) : undefined;
    // A request whose client just hung up still holds the lease until the server has
    // seen the hang-up and cut its bytes back: a client that retries at once (as they
    // do) waits for that instead of being refused.
    for (let wait = 5, waited = 0; session && 'busyWith' in session && waited < BUSY_WAIT_MS; wait = Math.min(wait * 2, 200)) {
      // A writer killed with its process (kill -9, a crash) leaves a live lease: take it over.
      if (holderIsDead(session.busyWith)) {
        session = await this.meta.leaseUpload(uuid, lease, session.busyWith);
        continue;
      }
      await new Promise((resolve) => setTimeout(resolve, wait));
      waited += wait;
      session = await this.meta.leaseUpload(uuid, lease);
    }
    if (session && 'busyWith' in session) throw new RegistryError('BLOB_UPLOAD_INVALID', 'another request is writing to this upload', { uuid });
    let held = session !== undefined;
    try {
      if (!session || session.repository !== repository) throw uploadUnknown(uuid);
      const renew = setInterval(() => {
        this.meta.renewUploadLease(uuid, lease).catch(() => undefined);
      }, UPLOAD_LEASE_MS / 3);
      renew.unref();
      try {
        return await work(session, async (offset) => {
          held = false;
          await this.meta.releaseUpload(uuid, holder, { offset, hashState: null });
        });
      } finally {
        clearInterval(renew);
      }
    } finally {
      // The session may be gone (completed, cancelled): releasing then changes nothing.
      if (held) await this.meta.releaseUpload(uuid, holder).catch(() => undefined);
    }
  }

  /** Appends a body at the session's offset; resolves to the new offset. */
  private async appendChunk(session: UploadSession, body: Body): Promise<number> {
    if (body.range) {
      if (body.range.start !== session.offset) {
        throw new RegistryError('BLOB_UPLOAD_INVALID', `chunk starts at ${body.range.start}, the upload is at ${session.offset}`, undefined, {
          status: 416,
          headers: uploadHeaders(session.repository, session.id, session.offset),
        });
      }
      const length = body.range.end - body.range.start + 1;
      if (body.length !== undefined && body.length !== length) {
        throw new RegistryError('SIZE_INVALID', 'Content-Length does not match Content-Range');
      }
      body = { ...body, length };
    }
    const state = await this.resumeHash(session);
    this.hashes.delete(session.id);
    const offset = session.offset + (await this.append(session.id, session.offset, state.hash, body));
    // Whatever part of a failed body arrived was never acknowledged: its hash is not kept.
    this.remember(session.id, { hash: state.hash, offset });
    return offset;
  }

  /** The running sha256 at the session's offset: the cached one, or the received prefix hashed again. */
  private async resumeHash(session: UploadSession): Promise<{ hash: Hash; offset: number }> {
    const cached = this.hashes.get(session.id);
    if (cached && cached.offset === session.offset) return cached;
    return { hash: await this.rehash(session, session.offset, 'sha256'), offset: session.offset };
  }

  private async rehash(session: UploadSession, length: number, algorithm: string): Promise<Hash> {
    const hash = createHash(algorithm);
    try {
      await this.store.hashUpload(session.id, length, hash);
    } catch (err) {
      if (!(err instanceof ObjectMissingError)) throw err;
      // The bytes are gone (removed by hand, or a crash of an old version): the session cannot go on.
      await this.meta.deleteUpload(session.id);
      throw uploadUnknown(session.id);
    }
    return hash;
  }

  private remember(id: string, state: { hash: Hash; offset: number }): void {
    if (this.hashes.size >= HASH_CACHE_LIMIT) this.hashes.delete(this.hashes.keys().next().value!);
    this.hashes.set(id, state);
  }

  private async append(id: string, offset: number, hash: Hash, body: Body): Promise<number> {
    try {
      return await this.store.appendUpload(id, offset, body.stream, hash, { expectedLength: body.length, onChunk: body.onChunk });
    } catch (err) {
      if (err instanceof IncompleteBodyError) throw new RegistryError('BLOB_UPLOAD_INVALID', err.message);
      if (err instanceof ObjectMissingError) {
        await this.meta.deleteUpload(id);
        throw uploadUnknown(id);
      }
      throw err;
    }
  }

  /** Publishes a verified upload as the blob and records it (see publishObject). */
  private record(repository: string, digest: Digest, size: number, id: string, session: boolean): Promise<void> {
    return publishObject(
      this.store,
      this.meta,
      digest.value,
      () => this.store.commitUpload(id, size, digest.value),
      () => this.meta.addBlob({ repository, digest: digest.value, size, uploadId: session ? id : undefined }),
    );
  }
}

function verify(digest: Digest, hash: Hash, size: number): void {
  const actual = `${digest.algorithm}:${hash.digest('hex')}`;
  if (actual !== digest.value) {
    throw new RegistryError('DIGEST_INVALID', 'provided digest did not match uploaded content', { expected: digest.value, actual, size });
  }
}

function uploadUnknown(uuid: string): RegistryError {
  return new RegistryError('BLOB_UPLOAD_UNKNOWN', 'blob upload unknown to registry', { uuid });
}

/** Location, Range and Docker-Upload-UUID: the headers every upload step answers with. */
export function uploadHeaders(repository: string, uuid: string, offset: number): Record<string, string> {
  return {
    Location: `/v2/${repository}/blobs/uploads/${uuid}`,
    Range: `0-${Math.max(offset - 1, 0)}`,
    'Docker-Upload-UUID': uuid,
  };
}
