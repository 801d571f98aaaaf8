// The BlobStore port on any S3-compatible object store (AWS S3, Ceph's RADOS Gateway,
// MinIO...), shared by every replica.
//
// Keys under the configured prefix:
//   blobs/<algorithm>/<first two hex>/<hex>   a blob, immutable once written
//   uploads/<id>/begin                        an upload exists (empty marker)
//   uploads/<id>/part-<n>                     bytes [(n-1)*P, n*P) of the upload, P = partSize
//   uploads/<id>/tail-<end>                   bytes [floor(end/P)*P, end): the part not yet full
//   quarantine/<algorithm>/<hex>-<ms>         a corrupt blob scrub moved aside
//
// An upload is plain objects, not an open multipart upload, because any replica must be
// able to resume it *and re-hash what it holds* (the running hash cannot be exported on
// Node 20), and the parts of an unfinished multipart upload cannot be read back. Its
// state is derived from the keys alone: the acknowledged offset (from the metadata
// store) names the parts and the one tail that hold its bytes; anything else under the
// upload is left over from a request that died, and is ignored or overwritten. A tail
// is only deleted once an append starts from another offset, so a replica killed after
// writing a new tail but before the offset was recorded loses nothing acknowledged.
// The commit assembles the parts server-side into the blob with a multipart upload
// (UploadPartCopy: every part but the last is P >= 5 MiB bytes), aborted if it fails.

import { randomUUID, type Hash } from 'node:crypto';
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCopyCommand,
  type _Object,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import {
  IncompleteBodyError,
  ObjectMissingError,
  StoreUnavailableError,
  type AppendOptions,
  type BlobReader,
  type BlobStore,
  type ByteRange,
} from '../ports.js';

const MiB = 1024 * 1024;
/** S3's minimum size of every part of a multipart upload but the last. */
export const MIN_PART_SIZE = 5 * MiB;
const DEFAULT_PART_SIZE = 8 * MiB;
/** A commit's multipart upload older than this was left by a replica that died mid-commit. */
const STALE_COMMIT_MS = 60 * 60 * 1000;

export interface S3Options {
  /** Any S3-compatible endpoint; AWS's own when omitted. */
  endpoint?: string;
  region: string;
  bucket: string;
  /** Prepended to every key (`registry/`); empty by default. */
  prefix?: string;
  /** Static credentials; without them the SDK's chain (AWS_* env vars, profiles, instance roles). */
  accessKey?: string;
  secretKey?: string;
  /** Path-style URLs (`endpoint/bucket/key`), which most S3-compatible stores need. */
  forcePathStyle?: boolean;
  /** Blob GETs answer 307 to a pre-signed URL instead of streaming through the registry. */
  redirect?: boolean;
  /** Size of an upload's parts (>= 5 MiB); the most an upload request buffers in memory. */
  partSize?: number;
}

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ECONNABORTED']);

/** True when the store did not answer or answered that it cannot serve now (5xx). */
function isOutage(err: unknown): boolean {
  const e = err as { code?: unknown; name?: unknown; $metadata?: { httpStatusCode?: number }; message?: unknown };
  if (typeof e?.code === 'string' && NETWORK_CODES.has(e.code)) return true;
  if (e?.name === 'TimeoutError' || e?.name === 'RequestTimeout') return true;
  const status = e?.$metadata?.httpStatusCode;
  if (status !== undefined && status >= 500) return true;
  return typeof e?.message === 'string' && /socket hang up|ECONNREFUSED|ECONNRESET|connect ETIMEDOUT/.test(e.message);
}

function isNotFound(err: unknown): boolean {
  const e = err as { name?: unknown; $metadata?: { httpStatusCode?: number } };
  return e?.name === 'NoSuchKey' || e?.name === 'NotFound' || e?.$metadata?.httpStatusCode === 404;
}

/** Rethrows an outage as StoreUnavailableError (503), anything else as is. */
function unavailable(err: unknown): never {
  if (isOutage(err)) throw new StoreUnavailableError(`the object store (S3) is unavailable: ${(err as Error).message || (err as Error).name}`, { cause: err });
  throw err;
}

/** The body of a request that ended early or broke: the caller resumes at its offset. */
function isBodyError(err: unknown): boolean {
  const code = (err as { code?: unknown })?.code;
  return code === 'ECONNRESET' || code === 'ERR_STREAM_PREMATURE_CLOSE' || (err as Error)?.message === 'aborted';
}

export class S3BlobStore implements BlobStore {
  readonly client: S3Client;
  private readonly bucket: string;
  private readonly prefix: string;
  private readonly partSize: number;
  private readonly redirect: boolean;

  constructor(options: S3Options) {
    this.bucket = options.bucket;
    this.prefix = options.prefix ? options.prefix.replace(/\/*$/, '/') : '';
    this.partSize = options.partSize ?? DEFAULT_PART_SIZE;
    if (this.partSize < MIN_PART_SIZE) throw new Error(`storage.s3 part size must be at least ${MIN_PART_SIZE} bytes`);
    this.redirect = options.redirect ?? false;
    this.client = new S3Client({
      endpoint: options.endpoint,
      region: options.region,
      forcePathStyle: options.forcePathStyle ?? false,
      ...(options.accessKey && options.secretKey ? { credentials: { accessKeyId: options.accessKey, secretAccessKey: options.secretKey } } : {}),
      // The SDK's default trailing checksums make streamed writes fail on stores that
      // do not speak them (Ceph 16 answers 411); the registry checks digests itself.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      // Fail fast while the store is down; a stalled transfer times out (idle, not total).
      requestHandler: { connectionTimeout: 5000, requestTimeout: 60_000 },
    });
  }

  // --- keys ------------------------------------------------------------------------

  private blobKey(digest: string): string {
    const [algorithm, hex] = digest.split(':') as [string, string];
    return `${this.prefix}blobs/${algorithm}/${hex.slice(0, 2)}/${hex}`;
  }

  private uploadDir(id: string): string {
    return `${this.prefix}uploads/${id}/`;
  }

  private partKey(id: string, n: number): string {
    return `${this.uploadDir(id)}part-${n}`;
  }

  private tailKey(id: string, end: number): string {
    return `${this.uploadDir(id)}tail-${end}`;
  }

  // --- plumbing ----------------------------------------------------------------------

  /** Runs one S3 call; an outage rejects with StoreUnavailableError. */
  private async call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      return unavailable(err);
    }
  }

  private async *listKeys(prefix: string): AsyncIterable<_Object> {
    let token: string | undefined;
    do {
      const page = await this.call(() => this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token })));
      yield* page.Contents ?? [];
      token = page.NextContinuationToken;
    } while (token);
  }

  private async deleteKeys(keys: string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += 1000) {
      const batch = keys.slice(i, i + 1000);
      await this.call(() => this.client.send(new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true } })));
    }
  }

  private async getBytes(key: string): Promise<Buffer> {
    try {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      return Buffer.from(await res.Body!.transformToByteArray());
    } catch (err) {
      if (isNotFound(err)) throw new ObjectMissingError(`no object ${key}`);
      return unavailable(err);
    }
  }

  private async put(key: string, body: Buffer): Promise<void> {
    await this.call(() => this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: body, ContentLength: body.length })));
  }

  private async size(key: string): Promise<number | null> {
    try {
      const head = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return head.ContentLength ?? 0;
    } catch (err) {
      if (isNotFound(err)) return null;
      return unavailable(err);
    }
  }

  /** The keys that hold the first `length` bytes of an upload, in order. */
  private sources(id: string, length: number): string[] {
    const full = Math.floor(length / this.partSize);
    const keys = Array.from({ length: full }, (_, i) => this.partKey(id, i + 1));
    if (length % this.partSize) keys.push(this.tailKey(id, length));
    return keys;
  }

  // --- the port ----------------------------------------------------------------------

  async init(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
    } catch (err) {
      if (isNotFound(err)) throw new Error(`storage.s3: bucket ${this.bucket} does not exist`);
      unavailable(err);
    }
  }

  async beginUpload(id: string): Promise<void> {
    const marker = `${this.uploadDir(id)}begin`;
    if ((await this.size(marker)) !== null) throw new Error(`upload ${id} exists`);
    await this.put(marker, Buffer.alloc(0));
  }

  async appendUpload(id: string, offset: number, body: Readable, hash: Hash, options: AppendOptions = {}): Promise<number> {
    let part = Math.floor(offset / this.partSize) + 1;
    const tailLength = offset % this.partSize;
    // Tails of other offsets are left from requests that died (or from before the last
    // acknowledged append): drop them. This offset's tail holds acknowledged bytes.
    const stale: string[] = [];
    let exists = false;
    for await (const o of this.listKeys(this.uploadDir(id))) {
      exists = true;
      if (/\/tail-\d+$/.test(o.Key!) && o.Key !== this.tailKey(id, offset)) stale.push(o.Key!);
    }
    if (!exists) throw new ObjectMissingError(`upload ${id} does not exist`);
    await this.deleteKeys(stale);

    // Bytes of the part being filled: the acknowledged tail, then the body.
    let pending: Buffer[] = [];
    if (tailLength) {
      const tail = await this.getBytes(this.tailKey(id, offset));
      if (tail.length !== tailLength) throw new Error(`upload ${id}: tail-${offset} holds ${tail.length} bytes, not ${tailLength}`);
      pending.push(tail);
    }
    let pendingBytes = tailLength;
    let written = 0;
    const flushParts = async () => {
      while (pendingBytes >= this.partSize) {
        const all = Buffer.concat(pending);
        await this.put(this.partKey(id, part++), all.subarray(0, this.partSize));
        pending = [all.subarray(this.partSize)];
        pendingBytes -= this.partSize;
      }
    };
    try {
      // for-await pauses the body while a part is written: at most one part is buffered.
      for await (const chunk of body as AsyncIterable<Buffer>) {
        hash.update(chunk);
        options.onChunk?.(chunk.length);
        written += chunk.length;
        if (options.expectedLength !== undefined && written > options.expectedLength) {
          throw new IncompleteBodyError(`body longer than the ${options.expectedLength} bytes announced`);
        }
        pending.push(chunk);
        pendingBytes += chunk.length;
        await flushParts();
      }
    } catch (err) {
      if (err instanceof IncompleteBodyError || isBodyError(err)) throw new IncompleteBodyError(`upload body broken off after ${written} bytes`, { cause: err });
      throw err;
    }
    if (options.expectedLength !== undefined && written !== options.expectedLength) {
      throw new IncompleteBodyError(`body ended after ${written} of ${options.expectedLength} bytes`);
    }
    const end = offset + written;
    if (pendingBytes > 0 && end !== offset) await this.put(this.tailKey(id, end), Buffer.concat(pending));
    return written;
  }

  async hashUpload(id: string, length: number, hash: Hash): Promise<void> {
    for (const key of this.sources(id, length)) {
      try {
        const res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
        for await (const chunk of res.Body as AsyncIterable<Buffer>) hash.update(chunk);
      } catch (err) {
        if (isNotFound(err)) throw new ObjectMissingError(`upload ${id}: ${key} is missing`);
        unavailable(err);
      }
    }
  }

  async uploadSize(id: string): Promise<number | null> {
    let exists = false;
    let size = 0;
    for await (const o of this.listKeys(this.uploadDir(id))) {
      exists = true;
      const m = /\/(part|tail)-(\d+)$/.exec(o.Key!);
      if (m) size = Math.max(size, m[1] === 'part' ? Number(m[2]) * this.partSize : Number(m[2]));
    }
    return exists ? size : null;
  }

  async commitUpload(id: string, length: number, digest: string): Promise<void> {
    const key = this.blobKey(digest);
    if ((await this.size(key)) === null) {
      const sources = this.sources(id, length);
      if (sources.length === 0) await this.put(key, Buffer.alloc(0));
      else if (sources.length === 1) await this.copy(sources[0]!, key);
      else await this.assemble(sources, key);
      const stored = await this.size(key);
      if (stored !== length) {
        await this.call(() => this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key })));
        throw new Error(`upload ${id}: assembled ${stored} bytes instead of ${length}`);
      }
    }
    // The upload stays until removeUpload: the registry may have to publish it again.
  }

  private async copy(from: string, to: string): Promise<void> {
    try {
      await this.client.send(new CopyObjectCommand({ Bucket: this.bucket, Key: to, CopySource: encodeURI(`${this.bucket}/${from}`) }));
    } catch (err) {
      if (isNotFound(err)) throw new ObjectMissingError(`no object ${from}`);
      unavailable(err);
    }
  }

  /** Joins the sources into `key` with a server-side multipart upload; aborted if any step fails. */
  private async assemble(sources: string[], key: string): Promise<void> {
    const { UploadId } = await this.call(() => this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: key })));
    try {
      const parts: { PartNumber: number; ETag?: string }[] = [];
      for (const [i, source] of sources.entries()) {
        const res = await this.call(() => this.client.send(new UploadPartCopyCommand({ Bucket: this.bucket, Key: key, UploadId, PartNumber: i + 1, CopySource: encodeURI(`${this.bucket}/${source}`) })));
        parts.push({ PartNumber: i + 1, ETag: res.CopyPartResult?.ETag });
      }
      // Its response's ETag is not used (empty on Ceph 16): HEAD tells what was stored.
      await this.call(() => this.client.send(new CompleteMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId, MultipartUpload: { Parts: parts } })));
    } catch (err) {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId })).catch(() => undefined);
      throw err;
    }
  }

  async putBlob(digest: string, bytes: Buffer): Promise<void> {
    await this.put(this.blobKey(digest), bytes);
  }

  async removeUpload(id: string): Promise<void> {
    const keys: string[] = [];
    for await (const o of this.listKeys(this.uploadDir(id))) keys.push(o.Key!);
    await this.deleteKeys(keys);
  }

  async *listUploads(): AsyncIterable<{ id: string; modifiedAt: number }> {
    // The orphan sweep calls this: it is also where commits of replicas that died
    // half-way are aborted, so no multipart upload lingers in the bucket.
    await this.abortStaleCommits();
    const uploads = new Map<string, number>();
    for await (const o of this.listKeys(`${this.prefix}uploads/`)) {
      const id = o.Key!.slice(this.prefix.length + 'uploads/'.length).split('/')[0]!;
      uploads.set(id, Math.max(uploads.get(id) ?? 0, o.LastModified?.getTime() ?? 0));
    }
    for (const [id, modifiedAt] of uploads) yield { id, modifiedAt };
  }

  private async abortStaleCommits(): Promise<void> {
    const res = await this.call(() => this.client.send(new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: `${this.prefix}blobs/` })));
    for (const u of res.Uploads ?? []) {
      if (Date.now() - (u.Initiated?.getTime() ?? 0) < STALE_COMMIT_MS) continue;
      await this.call(() => this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: u.Key, UploadId: u.UploadId })));
    }
  }

  stat(digest: string): Promise<number | null> {
    return this.size(this.blobKey(digest));
  }

  async open(digest: string, range?: ByteRange): Promise<BlobReader> {
    let res;
    try {
      res = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: this.blobKey(digest), Range: range ? `bytes=${range.start}-${range.end}` : undefined }),
      );
    } catch (err) {
      if (isNotFound(err)) throw new ObjectMissingError(`blob ${digest} is not in the object store`);
      return unavailable(err);
    }
    const body = res.Body as Readable;
    const total = /\/(\d+)$/.exec(res.ContentRange ?? '')?.[1];
    return {
      size: total !== undefined ? Number(total) : (res.ContentLength ?? 0),
      async writeTo(out: Writable) {
        try {
          await pipeline(body, out);
        } catch (err) {
          body.destroy();
          if (isOutage(err)) unavailable(err);
          throw err;
        }
      },
      async close() {
        body.destroy();
      },
    };
  }

  read(digest: string): Promise<Buffer> {
    return this.getBytes(this.blobKey(digest));
  }

  async delete(digest: string): Promise<void> {
    await this.call(() => this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.blobKey(digest) })));
  }

  async *list(): AsyncIterable<string> {
    for await (const o of this.listKeys(`${this.prefix}blobs/`)) {
      const m = /blobs\/([a-z0-9]+)\/[0-9a-f]{2}\/([0-9a-f]+)$/.exec(o.Key!);
      if (m) yield `${m[1]}:${m[2]}`;
    }
  }

  async quarantine(digest: string): Promise<string> {
    const [algorithm, hex] = digest.split(':') as [string, string];
    const to = `${this.prefix}quarantine/${algorithm}/${hex}-${Date.now()}`;
    await this.copy(this.blobKey(digest), to);
    await this.delete(digest);
    return `s3://${this.bucket}/${to}`;
  }

  async redirectUrl(digest: string, options: { ttlSeconds: number; range?: ByteRange }): Promise<string | undefined> {
    if (!this.redirect) return undefined;
    // The client sends its own Range header to the URL: only the host is signed.
    return getSignedUrl(this.client, new GetObjectCommand({ Bucket: this.bucket, Key: this.blobKey(digest) }), { expiresIn: options.ttlSeconds });
  }

  async probeWritable(): Promise<void> {
    const key = `${this.prefix}probe/${randomUUID()}`;
    await this.put(key, Buffer.from('ok\n'));
    await this.call(() => this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key })));
  }

  async freeBytes(): Promise<number | undefined> {
    return undefined;
  }

  /** Closes the client's sockets. */
  close(): void {
    this.client.destroy();
  }
}

