// The content-addressed blob store on the local filesystem:
//   <root>/blobs/<algorithm>/<first two hex>/<hex>   immutable, verified content
//   <root>/uploads/<uuid>                            bytes of an upload in progress
// An upload becomes a blob only by an atomic rename after its digest is verified and
// the file is fsynced, so a killed process never leaves a partial blob visible.

import { createHash, type Hash } from 'node:crypto';
import { createReadStream, createWriteStream, renameSync, rmSync } from 'node:fs';
import { mkdir, open, rename, rm, stat, truncate, readFile, readdir, type FileHandle } from 'node:fs/promises';
import { join, dirname } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Algorithm, Digest } from '../src/registry/names.js';
import { giveBack, takeBuffer } from './buffers.js';

/** Raised when a request body ends before the bytes it promised. */
export class IncompleteBodyError extends Error {}

/** A failed write to the upload file (as opposed to a failed read of the body). */
class WriteError extends Error {
  constructor(readonly cause: unknown) {
    super('write failed');
  }
}

const READ_CHUNK = 1 << 20;
const EARLY_SYNC = 64 << 20;

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

  /** Every blob file in the store, as `algorithm:hex` (names that are not hex are skipped). */
  async *listBlobFiles(): AsyncGenerator<string> {
    for (const algorithm of await readdir(this.blobsDir).catch(() => [] as string[])) {
      for (const prefix of await readdir(join(this.blobsDir, algorithm)).catch(() => [] as string[])) {
        for (const name of await readdir(join(this.blobsDir, algorithm, prefix)).catch(() => [] as string[])) {
          if (/^[a-f0-9]+$/.test(name)) yield `${algorithm}:${name}`;
        }
      }
    }
  }

  /** Hashes a stored blob file with the digest's algorithm; resolves to `algorithm:hex`. */
  async hashBlob(digest: Digest): Promise<string> {
    const hash = createHash(digest.algorithm);
    await pipeline(createReadStream(this.blobPath(digest), { highWaterMark: READ_CHUNK }), async (source) => {
      for await (const chunk of source) hash.update(chunk as Buffer);
    });
    return `${digest.algorithm}:${hash.digest('hex')}`;
  }

  /** Moves a corrupted blob file aside to <root>/quarantine, out of the store. */
  async quarantineBlob(digest: Digest): Promise<string> {
    const dir = join(this.root, 'quarantine');
    await mkdir(dir, { recursive: true });
    const target = join(dir, `${digest.algorithm}-${digest.hex}-${Date.now()}`);
    await rename(this.blobPath(digest), target);
    return target;
  }

  readBlob(digest: Digest): Promise<Buffer> {
    return readFile(this.blobPath(digest));
  }

  /**
   * Writes a blob (or a byte range of it) to `out` and ends it. Two pooled buffers serve
   * the whole transfer, one being read while the other is written: a stream of fresh
   * 1 MiB buffers cost about as much CPU in allocation and garbage collection as the
   * copying itself. Rejects when `out` closes early or the file is shorter than
   * its record.
   */
  async writeBlobTo(digest: Digest, out: Writable, range: { start: number; end: number } | undefined, onOpen: () => void): Promise<void> {
    const fh = await open(this.blobPath(digest), 'r');
    try {
      // Headers go out only once the file is open: a missing file is still a clean error.
      onOpen();
      let position = range?.start ?? 0;
      const end = range ? range.end + 1 : (await fh.stat()).size;
      const buffers = [takeBuffer(), takeBuffer()];
      let writing: Promise<void> = Promise.resolve();
      for (let turn = 0; position < end; turn ^= 1) {
        const buffer = buffers[turn]!;
        const { bytesRead } = await fh.read(buffer, 0, Math.min(buffer.length, end - position), position);
        if (bytesRead === 0) throw new Error(`blob file ${digest.value} is shorter than its record`);
        position += bytesRead;
        // The other buffer's write must be done before this one goes out (and before
        // the other buffer is read into again, next turn).
        await writing;
        writing = writeChunk(out, buffer.subarray(0, bytesRead));
        // Awaited next turn; until then a hang-up must not count as an unhandled rejection.
        writing.catch(() => undefined);
      }
      await writing;
      out.end();
      // Only after a complete transfer: a failed one may leave a write pending on a buffer.
      for (const buffer of buffers) giveBack(buffer);
    } finally {
      await fh.close();
    }
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
   * body ends short of `expectedLength` or the client goes away.
   *
   * Socket chunks (64 KiB at most) are copied into pooled 1 MiB buffers and let go at
   * once (see buffers.ts for why): one buffer is written while the other fills. Every
   * 64 MiB a background datasync starts the disk writeback early, so the fsync before
   * the commit has little left to do (chunked 1 GiB pushes: +25%).
   */
  async appendToUpload(uuid: string, body: Readable, hash: Hash, opts: { expectedLength?: number; onChunk?: (bytes: number) => void } = {}): Promise<number> {
    const fh = await open(this.uploadPath(uuid), 'a');
    let written = 0;
    let filling = takeBuffer();
    // Taken once the first buffer is full: most blobs (configs, small layers) need one.
    let spare: Buffer | undefined;
    let filled = 0;
    let unsynced = 0;
    let writing: Promise<void> = Promise.resolve();
    let syncing: Promise<void> | undefined;
    let syncFailure: unknown;
    let failed = false;
    // Failures of our own writes are not a client's short body: keep them apart.
    const write = (buffer: Buffer, length: number) => {
      const done = writeAll(fh, buffer, length).catch((err: unknown) => Promise.reject(new WriteError(err)));
      done.catch(() => undefined); // awaited before the next write; not unhandled meanwhile
      return done;
    };
    try {
      try {
        for await (const chunk of body as AsyncIterable<Buffer>) {
          written += chunk.length;
          hash.update(chunk);
          opts.onChunk?.(chunk.length);
          for (let from = 0; from < chunk.length; ) {
            const copied = chunk.copy(filling, filled, from);
            from += copied;
            filled += copied;
            if (filled < filling.length) continue;
            // The spare buffer's write must be done before it is filled again.
            await writing;
            writing = write(filling, filled);
            [filling, spare] = [spare ?? takeBuffer(), filling];
            unsynced += filled;
            filled = 0;
            if (unsynced >= EARLY_SYNC && !syncing) {
              unsynced = 0;
              syncing = writing
                .then(() => fh.datasync())
                .catch((err: unknown) => {
                  syncFailure ??= err instanceof WriteError ? err : new WriteError(err);
                })
                .finally(() => {
                  syncing = undefined;
                });
            }
          }
        }
        await writing;
        if (filled > 0) await write(filling, filled);
        await syncing;
        if (syncFailure) throw syncFailure;
      } catch (err) {
        failed = true;
        if (err instanceof WriteError) throw err.cause;
        // A client that disconnects mid-body surfaces as ECONNRESET / aborted.
        throw new IncompleteBodyError(`request body ended early after ${written} bytes`);
      }
    } finally {
      await writing.catch(() => undefined);
      await syncing;
      await fh.close();
      // A write that failed may have been cut short with the buffer still in the kernel's hands.
      if (!failed) {
        giveBack(filling);
        if (spare) giveBack(spare);
      }
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
   * Readies a verified upload to become the blob `digest`: its bytes reach the disk and
   * the target directory exists. The move itself is `placeSync`, which the caller runs
   * inside the metadata transaction that records the blob.
   */
  async prepareUpload(uuid: string, digest: Digest): Promise<void> {
    const fh = await open(this.uploadPath(uuid), 'r+');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    await mkdir(dirname(this.blobPath(digest)), { recursive: true });
  }

  /** Writes small content (a manifest) to an upload file, fsynced, ready for placeSync. */
  async prepareBytes(uuid: string, digest: Digest, bytes: Buffer): Promise<void> {
    const fh = await open(this.uploadPath(uuid), 'w');
    try {
      await fh.writeFile(bytes);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await mkdir(dirname(this.blobPath(digest)), { recursive: true });
  }

  /**
   * Renames a prepared upload into place. Synchronous on purpose: it runs inside the
   * SQLite write transaction that records the blob, so garbage collection (which deletes
   * rows and files in its own write transaction) can never remove a file whose row is
   * being written, nor leave a row without its file. A rename is a metadata operation of
   * microseconds; two uploads of the same content replace each other with the same bytes.
   */
  placeSync(uuid: string, digest: Digest): void {
    renameSync(this.uploadPath(uuid), this.blobPath(digest));
  }

  /** Makes a placed blob's directory entry durable. */
  syncPlaced(digest: Digest): Promise<void> {
    return syncDirectory(dirname(this.blobPath(digest)));
  }

  /** Removes a blob file; run inside the transaction that deletes its row (see placeSync). */
  removeBlobSync(digest: Digest): void {
    rmSync(this.blobPath(digest), { force: true });
  }
}

/**
 * Writes the first `length` bytes of `buffer` at the file's end. A short write (a full
 * disk can cut one) is carried on, so the next attempt reports the error instead of
 * the file silently missing bytes that were hashed.
 */
async function writeAll(fh: FileHandle, buffer: Buffer, length: number): Promise<void> {
  for (let offset = 0; offset < length; ) {
    const { bytesWritten } = await fh.write(buffer, offset, length - offset);
    offset += bytesWritten;
  }
}

/** One write, resolved once `out` has taken the bytes; rejected if it closes first. */
function writeChunk(out: Writable, chunk: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    if (out.destroyed) return reject(new Error('connection closed'));
    const onClose = () => reject(new Error('connection closed'));
    out.once('close', onClose);
    out.write(chunk, (err) => {
      out.off('close', onClose);
      if (err) reject(err);
      else resolve();
    });
  });
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
