// Blob rules: reads, links, mounts and the upload state machine (monolithic, streamed,
// chunked, resumed after a restart). Bytes go through storage/blobstore, records
// through storage/metadata; this module decides what is allowed and what is an error.

import { createHash, randomUUID, type Hash } from 'node:crypto';
import type { Readable, Writable } from 'node:stream';
import { RegistryError } from './errors.js';
import { checkName, isValidName, parseDigest, type Digest } from './names.js';
import { IncompleteBodyError, type FsBlobStore } from '../../storage/blobstore.js';
import type { MetadataStore, UploadRow } from '../../storage/metadata.js';
import type { TouchRecorder } from './touches.js';

/** A request body to append: the stream and what the client said about it. */
export interface Body {
  stream: Readable;
  /** Content-Length, when given. */
  length?: number;
  /** Parsed Content-Range `start-end` (inclusive), when given. */
  range?: { start: number; end: number };
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

export class BlobService {
  /**
   * Running sha256 of uploads in progress, by uuid, with the offset it covers. After a
   * restart (or when another process took a chunk) it is rebuilt from the file.
   */
  private readonly hashes = new Map<string, { hash: Hash; offset: number }>();
  /** Uploads with a request writing to them right now: a second writer is refused. */
  private readonly busy = new Set<string>();

  constructor(
    private readonly meta: MetadataStore,
    private readonly store: FsBlobStore,
    private readonly touches: TouchRecorder,
  ) {}

  /** Size of a blob the repository may serve; BLOB_UNKNOWN otherwise. */
  stat(repository: string, digestValue: string): { digest: Digest; size: number } {
    checkName(repository);
    const digest = parseDigest(digestValue);
    const size = this.meta.blobInRepository(repository, digest.value);
    if (size === undefined) throw new RegistryError('BLOB_UNKNOWN', 'blob unknown to registry', { digest: digest.value });
    // A client that checks a blob may be about to reference it: keep it from collection.
    this.touches.touch(digest.value);
    return { digest, size };
  }

  /** Sends the blob's bytes (or a range of them) to `out` and ends it; `onOpen` runs once the file is open. */
  send(digest: Digest, out: Writable, range: { start: number; end: number } | undefined, onOpen: () => void): Promise<void> {
    return this.store.writeBlobTo(digest, out, range, onOpen);
  }

  /** Removes the blob from the repository; the file stays until garbage collection. */
  delete(repository: string, digestValue: string): void {
    checkName(repository);
    const digest = parseDigest(digestValue);
    if (!this.meta.unlinkBlob(repository, digest.value)) {
      throw new RegistryError('BLOB_UNKNOWN', 'blob unknown to registry', { digest: digest.value });
    }
  }

  /**
   * Cross-repository mount. Returns true when the blob is now linked in `repository`;
   * false when it cannot be mounted (unknown, or `mayReadFrom` refuses the source) and
   * the caller should start an ordinary upload instead, as the spec says.
   */
  mount(repository: string, digestValue: string, from: string | undefined, mayReadFrom: (repo: string) => boolean): boolean {
    checkName(repository);
    const digest = parseDigest(digestValue);
    let source = from;
    if (source !== undefined) {
      if (!isValidName(source) || this.meta.blobInRepository(source, digest.value) === undefined) return false;
    } else {
      source = this.meta.aRepositoryWithBlob(digest.value);
      if (source === undefined) return false;
    }
    if (source !== repository && !mayReadFrom(source)) return false;
    return this.meta.mountBlob(repository, digest.value);
  }

  /** A monolithic upload: the whole blob in one request, with its digest. */
  async putMonolithic(repository: string, digestValue: string, body: Body): Promise<number> {
    checkName(repository);
    const digest = parseDigest(digestValue);
    const uuid = randomUUID();
    await this.store.createUpload(uuid);
    try {
      const hash = createHash(digest.algorithm);
      const size = await this.append(uuid, hash, body);
      await this.verifyAndPrepare(uuid, digest, hash, size);
      await this.record(repository, digest, size, uuid, false);
      return size;
    } catch (err) {
      await this.store.removeUpload(uuid);
      throw err;
    }
  }

  async startUpload(repository: string): Promise<UploadState> {
    checkName(repository);
    const uuid = randomUUID();
    await this.store.createUpload(uuid);
    this.meta.createUpload(repository, uuid);
    return { uuid, repository, offset: 0 };
  }

  status(repository: string, uuid: string): UploadState {
    const row = this.session(repository, uuid);
    return { uuid, repository, offset: row.offset };
  }

  /** A PATCH: appends a chunk (Content-Range given) or a stream (no Content-Range). */
  async patch(repository: string, uuid: string, body: Body): Promise<UploadState> {
    return this.exclusive(repository, uuid, async (row) => {
      const offset = await this.appendChunk(row, body);
      this.meta.setUploadOffset(uuid, offset);
      return { uuid, repository, offset };
    });
  }

  /** The closing PUT: an optional last chunk, then the digest check and the commit. */
  async complete(repository: string, uuid: string, digestValue: string | undefined, body: Body | undefined): Promise<{ digest: Digest; size: number }> {
    if (!digestValue) throw new RegistryError('DIGEST_INVALID', 'the digest query parameter is required to complete an upload');
    const digest = parseDigest(digestValue);
    return this.exclusive(repository, uuid, async (row) => {
      let offset = row.offset;
      if (body) {
        offset = await this.appendChunk(row, body);
        this.meta.setUploadOffset(uuid, offset);
      } else {
        // Only the acknowledged bytes may become the blob (appendChunk trims for itself).
        await this.trimToOffset(row);
      }
      const state = this.hashes.get(uuid);
      const hash = digest.algorithm === 'sha256' && state && state.offset === offset
        ? state.hash
        : await this.store.hashUpload(uuid, digest.algorithm, offset);
      this.hashes.delete(uuid);
      try {
        await this.verifyAndPrepare(uuid, digest, hash, offset);
      } catch (err) {
        // A wrong digest ends the session: its bytes can never become this blob.
        this.meta.deleteUpload(uuid);
        await this.store.removeUpload(uuid);
        throw err;
      }
      await this.record(repository, digest, offset, uuid, true);
      return { digest, size: offset };
    });
  }

  async cancel(repository: string, uuid: string): Promise<void> {
    await this.exclusive(repository, uuid, async () => {
      this.hashes.delete(uuid);
      this.meta.deleteUpload(uuid);
      await this.store.removeUpload(uuid);
    });
  }

  private session(repository: string, uuid: string): UploadRow {
    checkName(repository);
    const row = UUID_RE.test(uuid) ? this.meta.getUpload(uuid) : undefined;
    if (!row || row.repository !== repository) {
      throw new RegistryError('BLOB_UPLOAD_UNKNOWN', 'blob upload unknown to registry', { uuid });
    }
    return row;
  }

  private async exclusive<T>(repository: string, uuid: string, work: (row: UploadRow) => Promise<T>): Promise<T> {
    const row = this.session(repository, uuid);
    if (this.busy.has(uuid)) {
      throw new RegistryError('BLOB_UPLOAD_INVALID', 'another request is writing to this upload', { uuid });
    }
    this.busy.add(uuid);
    try {
      return await work(row);
    } finally {
      this.busy.delete(uuid);
    }
  }

  /** Appends a body at the session's offset; resolves to the new offset. */
  private async appendChunk(row: UploadRow, body: Body): Promise<number> {
    if (body.range) {
      if (body.range.start !== row.offset) {
        throw new RegistryError('BLOB_UPLOAD_INVALID', `chunk starts at ${body.range.start}, the upload is at ${row.offset}`, undefined, {
          status: 416,
          headers: uploadHeaders(row.repository, row.uuid, row.offset),
        });
      }
      const length = body.range.end - body.range.start + 1;
      if (body.length !== undefined && body.length !== length) {
        throw new RegistryError('SIZE_INVALID', 'Content-Length does not match Content-Range');
      }
      body = { ...body, length };
    }
    const state = await this.resumeHash(row);
    try {
      state.offset = row.offset + (await this.append(row.uuid, state.hash, body));
      return state.offset;
    } catch (err) {
      // Whatever part of the body arrived was never acknowledged: forget it.
      this.hashes.delete(row.uuid);
      await this.store.truncateUpload(row.uuid, row.offset);
      throw err;
    }
  }

  /** The running hash at the session's offset, rebuilt from the file when not at hand. */
  private async resumeHash(row: UploadRow): Promise<{ hash: Hash; offset: number }> {
    const state = this.hashes.get(row.uuid);
    if (state && state.offset === row.offset) return state;
    await this.trimToOffset(row);
    const fresh = { hash: await this.store.hashUpload(row.uuid, 'sha256', row.offset), offset: row.offset };
    this.hashes.set(row.uuid, fresh);
    return fresh;
  }

  /**
   * Cuts the upload file back to the acknowledged offset: bytes past it come from a
   * request that died half-way, possibly in a process that was killed and never cleaned
   * up. No file at all means a crash came between a commit's rename into blobs/ and its
   * transaction: the session cannot go on, and the client must start over.
   */
  private async trimToOffset(row: UploadRow): Promise<void> {
    const size = await this.store.uploadSize(row.uuid);
    if (size === null) {
      this.meta.deleteUpload(row.uuid);
      throw new RegistryError('BLOB_UPLOAD_UNKNOWN', 'blob upload unknown to registry', { uuid: row.uuid });
    }
    if (size !== row.offset) await this.store.truncateUpload(row.uuid, row.offset);
  }

  private async append(uuid: string, hash: Hash, body: Body): Promise<number> {
    try {
      return await this.store.appendToUpload(uuid, body.stream, hash, { expectedLength: body.length, onChunk: body.onChunk });
    } catch (err) {
      if (err instanceof IncompleteBodyError) {
        throw new RegistryError('BLOB_UPLOAD_INVALID', err.message);
      }
      throw err;
    }
  }

  /** Records a verified upload as the blob, placing its file or dropping a duplicate. */
  private async record(repository: string, digest: Digest, size: number, uuid: string, session: boolean): Promise<void> {
    const placed = this.meta.addBlob(repository, digest.value, size, () => this.store.placeSync(uuid, digest), session ? uuid : undefined);
    if (placed) await this.store.syncPlaced(digest);
    else await this.store.removeUpload(uuid);
  }

  private async verifyAndPrepare(uuid: string, digest: Digest, hash: Hash, size: number): Promise<void> {
    const actual = `${digest.algorithm}:${hash.digest('hex')}`;
    if (actual !== digest.value) {
      throw new RegistryError('DIGEST_INVALID', 'provided digest did not match uploaded content', {
        expected: digest.value,
        actual,
        size,
      });
    }
    await this.store.prepareUpload(uuid, digest);
  }
}

/** Location, Range and Docker-Upload-UUID: the headers every upload step answers with. */
export function uploadHeaders(repository: string, uuid: string, offset: number): Record<string, string> {
  return {
    Location: `/v2/${repository}/blobs/uploads/${uuid}`,
    Range: `0-${Math.max(offset - 1, 0)}`,
    'Docker-Upload-UUID': uuid,
  };
}
