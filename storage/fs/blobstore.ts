// The BlobStore port on the local filesystem:
//   <root>/blobs/<algorithm>/<first two hex>/<hex>   immutable, verified content
//   <root>/uploads/<id>                              bytes of an upload in progress
// An upload becomes a blob by a hard link made after its digest is verified and the
// file is fsynced (then the directory too), so a killed process never leaves a partial
// blob visible, and publishing is idempotent: a link onto an existing blob fails with
// EEXIST and changes nothing. Every operation is asynchronous (libuv's thread pool):
// deleting a 2 GiB file never stalls the event loop.

import type { Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { link, mkdir, open, rename, rm, stat, statfs, truncate, readFile, readdir, unlink, type FileHandle } from 'node:fs/promises';
import { randomBytes, randomUUID } from 'node:crypto';
import { join, dirname } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { giveBack, takeBuffer } from '../buffers.js';
import { IncompleteBodyError, ObjectMissingError, type AppendOptions, type BlobReader, type BlobStore, type ByteRange } from '../ports.js';

/** A failed write to the upload file (as opposed to a failed read of the body). */
class WriteError extends Error {
  constructor(readonly cause: unknown) {
    super('write failed');
  }
}

const READ_CHUNK = 1 << 20;
const EARLY_SYNC = 64 << 20;

const isMissing = (err: unknown) => (err as NodeJS.ErrnoException).code === 'ENOENT';

async function sizeOrNull(path: string): Promise<number | null> {
  try {
    return (await stat(path)).size;
  } catch (err) {
    if (isMissing(err)) return null;
    throw err;
  }
}

export class FsBlobStore implements BlobStore {
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
  private blobPath(digest: string): string {
    const colon = digest.indexOf(':');
    const hex = digest.slice(colon + 1);
    return join(this.blobsDir, digest.slice(0, colon), hex.slice(0, 2), hex);
  }

  private uploadPath(id: string): string {
    return join(this.uploadsDir, id);
  }

  stat(digest: string): Promise<number | null> {
    return sizeOrNull(this.blobPath(digest));
  }

  async *list(): AsyncIterable<string> {
    for (const algorithm of await readdir(this.blobsDir).catch(() => [] as string[])) {
      for (const prefix of await readdir(join(this.blobsDir, algorithm)).catch(() => [] as string[])) {
        for (const name of await readdir(join(this.blobsDir, algorithm, prefix)).catch(() => [] as string[])) {
          if (/^[a-f0-9]+$/.test(name)) yield `${algorithm}:${name}`;
        }
      }
    }
  }

  /** Moves a corrupted blob file aside to <root>/quarantine, out of the store. */
  async quarantine(digest: string): Promise<string> {
    const dir = join(this.root, 'quarantine');
    await mkdir(dir, { recursive: true });
    const target = join(dir, `${digest.replace(':', '-')}-${Date.now()}`);
    await rename(this.blobPath(digest), target);
    return target;
  }

  async read(digest: string): Promise<Buffer> {
    try {
      return await readFile(this.blobPath(digest));
    } catch (err) {
      if (isMissing(err)) throw new ObjectMissingError(`ENOENT: blob ${digest} is missing from the store`);
      throw err;
    }
  }

  async open(digest: string, range?: ByteRange): Promise<BlobReader> {
    let fh: FileHandle;
    try {
      fh = await open(this.blobPath(digest), 'r');
    } catch (err) {
      if (isMissing(err)) throw new ObjectMissingError(`ENOENT: blob ${digest} is missing from the store`);
      throw err;
    }
    const size = (await fh.stat()).size;
    let closed = false;
    const close = async () => {
      if (closed) return;
      closed = true;
      await fh.close();
    };
    return {
      size,
      close,
      async writeTo(out) {
        try {
          await sendFile(fh, digest, out, range?.start ?? 0, range ? range.end + 1 : size);
        } finally {
          await close();
        }
      },
    };
  }

  delete(digest: string): Promise<void> {
    return rm(this.blobPath(digest), { force: true });
  }

  async beginUpload(id: string): Promise<void> {
    const fh = await open(this.uploadPath(id), 'wx');
    await fh.close();
  }

  uploadSize(id: string): Promise<number | null> {
    return sizeOrNull(this.uploadPath(id));
  }

  removeUpload(id: string): Promise<void> {
    return rm(this.uploadPath(id), { force: true });
  }

  async *listUploads(): AsyncIterable<{ id: string; modifiedAt: number }> {
    for (const id of await readdir(this.uploadsDir).catch(() => [] as string[])) {
      const info = await stat(this.uploadPath(id)).catch(() => undefined);
      if (info) yield { id, modifiedAt: info.mtimeMs };
    }
  }

  /** Cuts the upload back to `offset` (bytes of a request that died half-way); ObjectMissingError when gone. */
  private async trim(id: string, offset: number): Promise<void> {
    const size = await this.uploadSize(id);
    if (size === null) throw new ObjectMissingError(`ENOENT: upload ${id} is missing from the store`);
    if (size < offset) throw new Error(`upload ${id} has ${size} bytes, ${offset} were acknowledged`);
    if (size > offset) await truncate(this.uploadPath(id), offset);
  }

  /**
   * Appends a request body to an upload file at `offset`, feeding every byte to `hash`.
   *
   * Socket chunks (64 KiB at most) are copied into pooled 1 MiB buffers and let go at
   * once (see buffers.ts for why): one buffer is written while the other fills. Every
   * 64 MiB of the upload a background datasync starts the disk writeback early, so the
   * fsync before the commit has little left to do. The 64 MiB count runs across the
   * requests of a chunked upload (from `offset`): counted per request, PATCHes smaller
   * than 64 MiB never started one, and the commit of a 512 MiB upload in 32 MiB chunks
   * waited for all of it at once. A failed append is cut back to `offset` at once, so a
   * full disk gets its space back.
   */
  async appendUpload(id: string, offset: number, body: Readable, hash: Hash, opts: AppendOptions = {}): Promise<number> {
    await this.trim(id, offset);
    try {
      return await appendFile(this.uploadPath(id), body, hash, opts, offset % EARLY_SYNC);
    } catch (err) {
      await truncate(this.uploadPath(id), offset).catch(() => undefined);
      throw err;
    }
  }

  async hashUpload(id: string, length: number, hash: Hash): Promise<void> {
    if (length === 0) {
      if ((await this.uploadSize(id)) === null) throw new ObjectMissingError(`ENOENT: upload ${id} is missing from the store`);
      return;
    }
    try {
      await pipeline(createReadStream(this.uploadPath(id), { start: 0, end: length - 1, highWaterMark: READ_CHUNK }), async (source) => {
        for await (const chunk of source) hash.update(chunk as Buffer);
      });
    } catch (err) {
      if (isMissing(err)) throw new ObjectMissingError(`ENOENT: upload ${id} is missing from the store`);
      throw err;
    }
  }

  async commitUpload(id: string, length: number, digest: string): Promise<void> {
    // Content the store already has: the upload's bytes are dropped, so they need no
    // fsync (for a 512 MiB chunked push of stored content that fsync was most of its
    // time). Should a collection delete the blob after this check, the registry finds
    // it missing after inserting the row and commits again, with the fsync (publish.ts).
    if ((await this.stat(digest)) !== null) return;
    await this.trim(id, length);
    const fh = await open(this.uploadPath(id), 'r+');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    await this.publish(this.uploadPath(id), digest);
  }

  async putBlob(digest: string, bytes: Buffer): Promise<void> {
    if ((await this.stat(digest)) !== null) return;
    // A temp file of our own in uploads/, removed whatever happens (a full disk included).
    const temp = this.uploadPath(`manifest-${randomUUID()}`);
    try {
      const fh = await open(temp, 'wx');
      try {
        await fh.writeFile(bytes);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await this.publish(temp, digest);
    } finally {
      await rm(temp, { force: true });
    }
  }

  /** Links a synced file in as the blob (EEXIST: it is there already) and makes the entry durable. */
  private async publish(from: string, digest: string): Promise<void> {
    const target = this.blobPath(digest);
    await mkdir(dirname(target), { recursive: true });
    try {
      await link(from, target);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return;
      throw err;
    }
    await syncDirectory(dirname(target));
  }

  /**
   * Proves the data directory takes writes: creates a file, writes, fsyncs, deletes it.
   * Permission bits do not stop root, so only a real write tells a read-only mount or a
   * full disk apart from a healthy one. The name is random: processes share the directory.
   */
  async probeWritable(): Promise<void> {
    const path = join(this.root, `.readyz-${process.pid}-${randomBytes(4).toString('hex')}`);
    const file = await open(path, 'wx');
    try {
      await file.write('ok\n');
      await file.sync();
    } finally {
      await file.close();
      await unlink(path).catch(() => undefined);
    }
  }

  async freeBytes(): Promise<number> {
    const s = await statfs(this.root);
    return s.bavail * s.bsize;
  }
}

/**
 * Writes bytes [position, end) of an open blob file to `out` and ends it. Two pooled
 * buffers serve the whole transfer, one being read while the other is written: a stream
 * of fresh 1 MiB buffers cost about as much CPU in allocation and garbage collection as
 * the copying itself. Rejects when `out` closes early or the file is shorter than its record.
 */
async function sendFile(fh: FileHandle, digest: string, out: Writable, position: number, end: number): Promise<void> {
  const buffers = [takeBuffer(), takeBuffer()];
  let writing: Promise<void> = Promise.resolve();
  for (let turn = 0; position < end; turn ^= 1) {
    const buffer = buffers[turn]!;
    const { bytesRead } = await fh.read(buffer, 0, Math.min(buffer.length, end - position), position);
    if (bytesRead === 0) throw new Error(`blob file ${digest} is shorter than its record`);
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
}

/**
 * Appends a request body to a file. Resolves to the number of bytes written; rejects
 * with IncompleteBodyError when the body ends short of `expectedLength` or the client
 * goes away, with the file system's error when a write fails.
 */
async function appendFile(path: string, body: Readable, hash: Hash, opts: AppendOptions, unsyncedBefore: number): Promise<number> {
  const fh = await open(path, 'a');
  let written = 0;
  let filling = takeBuffer();
  // Taken once the first buffer is full: most blobs (configs, small layers) need one.
  let spare: Buffer | undefined;
  let filled = 0;
  let unsynced = unsyncedBefore;
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
