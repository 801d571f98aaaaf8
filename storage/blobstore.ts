// The content-addressed blob store on the local filesystem:
//   <root>/blobs/<algorithm>/<first two hex>/<hex>   immutable, verified content
//   <root>/uploads/<uuid>                            bytes of an upload in progress
// An upload becomes a blob only by an atomic rename after its digest is verified and
// the file is fsynced, so a killed process never leaves a partial blob visible.

import { createHash, type Hash } from 'node:crypto';
import { createReadStream, createWriteStream, type ReadStream } from 'node:fs';
import { mkdir, open, rename, rm, stat, truncate, readFile, readdir } from 'node:fs/promises';
import { join, dirname } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Algorithm, Digest } from '../src/registry/names.js';

/** Raised when a request body ends before the bytes it promised. */
export class IncompleteBodyError extends Error {}

/** Raised when a body is larger than the caller allows. */
export class BodyTooLargeError extends Error {}

const READ_CHUNK = 1 << 20;

export class FsBlobStore {
  private readonly blobsDir: string;
  private readonly uploadsDir: string;

  constructor(readonly root: string) {
    this.blobsDir = join(root, 'blobs');
    this.uploadsDir = join(root, 'uploads');
  }

  async init(): Promise<void> {
    await mkdir(this.blobsDir, { recursive: true });
    await mkdir(this.uploadsDir, { recursive: true });
  }

  /** Digests were validated against the grammar (lowercase hex only), so the path stays under root. */
  blobPath(digest: Digest): string {
    return join(this.blobsDir, digest.algorithm, digest.hex.slice(0, 2), digest.hex);
  }

  uploadPath(uuid: string): string {
    return join(this.uploadsDir, uuid);
  }

  /** Size of the stored blob file, or null when there is none. */
  async blobSize(digest: Digest): Promise<number | null> {
    try {
      return (await stat(this.blobPath(digest))).size;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }

  readBlob(digest: Digest): Promise<Buffer> {
    return readFile(this.blobPath(digest));
  }

  openBlobStream(digest: Digest, range?: { start: number; end: number }): ReadStream {
    return createReadStream(this.blobPath(digest), { ...range, highWaterMark: READ_CHUNK });
  }

  async createUpload(uuid: string): Promise<void> {
    const fh = await open(this.uploadPath(uuid), 'wx');
    await fh.close();
  }

  async uploadSize(uuid: string): Promise<number | null> {
    try {
      return (await stat(this.uploadPath(uuid))).size;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }

  /** Cuts an upload back to the length that was acknowledged to the client. */
  truncateUpload(uuid: string, length: number): Promise<void> {
    return truncate(this.uploadPath(uuid), length);
  }

  removeUpload(uuid: string): Promise<void> {
    return rm(this.uploadPath(uuid), { force: true });
  }

  async listUploadFiles(): Promise<string[]> {
    return readdir(this.uploadsDir);
  }

  /**
   * Appends a request body to an upload file, feeding every byte to `hash` on the way.
   * Resolves to the number of bytes written; rejects with IncompleteBodyError when the
   * body ends short of `expectedLength`, and BodyTooLargeError past `maxLength`.
   */
  async appendToUpload(
    uuid: string,
    body: Readable,
    hash: Hash,
    opts: { expectedLength?: number; maxLength?: number } = {},
  ): Promise<number> {
    let written = 0;
    const limit = opts.maxLength ?? Number.POSITIVE_INFINITY;
    const meter = new Transform({
      transform(chunk: Buffer, _enc, done) {
        written += chunk.length;
        if (written > limit) return done(new BodyTooLargeError('body too large'));
        hash.update(chunk);
        done(null, chunk);
      },
    });
    const out = createWriteStream(this.uploadPath(uuid), { flags: 'a', highWaterMark: READ_CHUNK });
    try {
      await pipeline(body, meter, out);
    } catch (err) {
      if (err instanceof BodyTooLargeError) throw err;
      // A client that disconnects mid-body surfaces as ECONNRESET / aborted / premature close.
      throw new IncompleteBodyError(`request body ended early after ${written} bytes`);
    }
    if (opts.expectedLength !== undefined && written !== opts.expectedLength) {
      throw new IncompleteBodyError(`request body had ${written} bytes, Content-Length said ${opts.expectedLength}`);
    }
    return written;
  }

  /** Hashes the first `length` bytes of an upload file again (after a restart, or for sha512). */
  async hashUpload(uuid: string, algorithm: Algorithm, length: number): Promise<Hash> {
    const hash = createHash(algorithm);
    if (length === 0) return hash;
    await pipeline(createReadStream(this.uploadPath(uuid), { start: 0, end: length - 1, highWaterMark: READ_CHUNK }), async (source) => {
      for await (const chunk of source) hash.update(chunk as Buffer);
    });
    return hash;
  }

  /**
   * Makes a verified upload the blob `digest`: fsync, then rename into place. When the
   * blob exists already (the same content pushed twice) the upload is simply dropped.
   */
  async commitUpload(uuid: string, digest: Digest): Promise<void> {
    const source = this.uploadPath(uuid);
    const fh = await open(source, 'r+');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    await this.moveIntoPlace(source, digest);
  }

  /** Stores small content (a manifest) as a blob, with the same fsync-then-rename rule. */
  async writeBlob(digest: Digest, bytes: Buffer, tempName: string): Promise<void> {
    if ((await this.blobSize(digest)) === bytes.length) return;
    const temp = this.uploadPath(tempName);
    const fh = await open(temp, 'w');
    try {
      await fh.writeFile(bytes);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await this.moveIntoPlace(temp, digest);
  }

  async removeBlob(digest: Digest): Promise<void> {
    await rm(this.blobPath(digest), { force: true });
  }

  private async moveIntoPlace(source: string, digest: Digest): Promise<void> {
    const target = this.blobPath(digest);
    await mkdir(dirname(target), { recursive: true });
    // rename() replaces atomically; two uploads of the same content write the same bytes.
    await rename(source, target);
    await syncDirectory(dirname(target));
  }
}

/** Makes a rename durable: the directory entry itself must reach the disk. */
async function syncDirectory(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
