// Where images come from and go to. Pull, push and copy are all one operation
// (copyImage) between an ImageSource and an ImageDestination: a registry repository or
// an OCI layout directory (a docker archive is converted to a layout first).

import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { OciLayout } from './layout.js';
import { manifestMediaType, type Descriptor, type FetchedManifest } from './media-types.js';
import { toOciManifest } from './oci-convert.js';
import type { ProgressListener } from './progress.js';
import { RegistryHttpError } from './errors.js';
import { UploadOutOfStepError, withRetries, type RetryOptions } from './retry.js';
import { UploadState } from './upload-state.js';
import { RegistryClient } from './registry-client.js';

export interface ImageSource {
  readonly name: string;
  getManifest(reference: string): Promise<FetchedManifest>;
  /** The blob's bytes from `offset` on. */
  openBlob(desc: Descriptor, offset: number): Promise<Readable>;
  /** Set when the source is a registry repository: a destination on the same registry can mount from it. */
  readonly registry?: { client: RegistryClient; repo: string };
}

export interface TransferContext {
  onProgress?: ProgressListener;
  retry?: RetryOptions;
}

export interface ImageDestination {
  readonly name: string;
  /** Copies one blob unless the destination has it already. */
  putBlob(desc: Descriptor, source: ImageSource, ctx: TransferContext): Promise<void>;
  /**
   * Stores a manifest. Children go by digest; the root (`root: true`) goes under `tag`
   * when there is one, and is what a layout's index.json points at.
   */
  putManifest(m: FetchedManifest, target: { root: boolean; tag?: string }, ctx: TransferContext): Promise<string>;
  /** Called once the whole image is in. */
  finish?(): Promise<void>;
}

function retryOptions(ctx: TransferContext, what: string): RetryOptions {
  return {
    ...ctx.retry,
    onRetry: (err, attempt, delayMs) => {
      ctx.retry?.onRetry?.(err, attempt, delayMs);
      ctx.onProgress?.({ type: 'retry', what, attempt, delayMs, error: (err as Error).message });
    },
  };
}

/** A progress reporter for one blob that speaks at most every 100 ms (and at the end). */
function bytesReporter(desc: Descriptor, ctx: TransferContext): ((total: number) => void) | undefined {
  const listener = ctx.onProgress;
  if (!listener) return undefined;
  let last = 0;
  return (bytes) => {
    const now = Date.now();
    if (now - last < 100 && bytes < desc.size) return;
    last = now;
    listener({ type: 'blob-progress', digest: desc.digest, size: desc.size, bytes });
  };
}

// ---- registry repository -------------------------------------------------------------

export class RegistrySource implements ImageSource {
  readonly registry: { client: RegistryClient; repo: string };
  constructor(
    readonly client: RegistryClient,
    readonly repo: string,
  ) {
    this.registry = { client, repo };
  }
  get name(): string {
    return `${this.client.registry}/${this.repo}`;
  }
  getManifest(reference: string): Promise<FetchedManifest> {
    return this.client.getManifest(this.repo, reference);
  }
  openBlob(desc: Descriptor, offset: number): Promise<Readable> {
    return this.client.openBlob(this.repo, desc.digest, offset);
  }
}

export interface RegistryDestinationOptions {
  /** Blobs up to this size go up in one PUT; larger ones in PATCH chunks that can resume. */
  monolithicMaxBytes?: number;
  chunkBytes?: number;
}

const DEFAULT_MONOLITHIC_MAX = 32 * 1024 * 1024;
const DEFAULT_CHUNK = 16 * 1024 * 1024;

export class RegistryDestination implements ImageDestination {
  constructor(
    readonly client: RegistryClient,
    readonly repo: string,
    private readonly opts: RegistryDestinationOptions = {},
  ) {}

  get name(): string {
    return `${this.client.registry}/${this.repo}`;
  }

  async putBlob(desc: Descriptor, source: ImageSource, ctx: TransferContext): Promise<void> {
    if ((await this.client.blobSize(this.repo, desc.digest, { forPush: true })) !== undefined) {
      ctx.onProgress?.({ type: 'blob-skipped', digest: desc.digest, size: desc.size, reason: 'exists' });
      return;
    }
    const from = source.registry;
    if (from && from.client.baseUrl === this.client.baseUrl && from.repo !== this.repo) {
      if (await this.client.mountBlob(this.repo, desc.digest, from.repo)) {
        ctx.onProgress?.({ type: 'blob-skipped', digest: desc.digest, size: desc.size, reason: 'mounted' });
        return;
      }
    }
    if (desc.size <= (this.opts.monolithicMaxBytes ?? DEFAULT_MONOLITHIC_MAX)) {
      ctx.onProgress?.({ type: 'blob-start', digest: desc.digest, size: desc.size, resumeAt: 0 });
      await withRetries(() => this.uploadMonolithic(desc, source, ctx), retryOptions(ctx, `upload ${desc.digest}`));
    } else {
      await this.uploadChunked(desc, source, ctx);
    }
    ctx.onProgress?.({ type: 'blob-done', digest: desc.digest, size: desc.size });
  }

  /** POST then one streamed PUT with the whole blob. */
  private async uploadMonolithic(desc: Descriptor, source: ImageSource, ctx: TransferContext): Promise<void> {
    const location = await this.client.startUpload(this.repo);
    const body = withProgress(await source.openBlob(desc, 0), desc, 0, ctx);
    const url = withQuery(location, { digest: desc.digest });
    const res = await this.client.send('PUT', url, {
      scopes: [`repository:${this.repo}:pull,push`],
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(desc.size) },
      body: oneShot(body),
      what: `upload ${desc.digest} to ${this.repo}`,
      ok: [201],
      retry: false,
    });
    await res.body?.cancel();
  }

  /**
   * PATCH chunks with Content-Range, then PUT with the digest. After a failure the
   * registry's upload status says how much it holds, and the upload continues from there;
   * the session is remembered on disk (UploadState), so a later run does the same.
   */
  private async uploadChunked(desc: Descriptor, source: ImageSource, ctx: TransferContext): Promise<void> {
    const chunk = this.opts.chunkBytes ?? DEFAULT_CHUNK;
    const scopes = [`repository:${this.repo}:pull,push`];
    const state = new UploadState(this.client.registry, this.repo, desc.digest);
    let location = await state.load();
    let offset = 0;
    if (location) {
      offset = await this.client.uploadOffset(this.repo, location).catch(() => -1);
      if (offset < 0 || offset > desc.size) location = undefined;
    }
    if (!location) {
      offset = 0;
      location = await this.client.startUpload(this.repo);
      await state.save(location);
    }
    ctx.onProgress?.({ type: 'blob-start', digest: desc.digest, size: desc.size, resumeAt: offset });
    await withRetries(async (attempt) => {
      if (attempt > 1) offset = await this.client.uploadOffset(this.repo, location!);
      const reader = new ChunkReader(withProgress(await source.openBlob(desc, offset), desc, offset, ctx));
      while (offset < desc.size) {
        const length = Math.min(chunk, desc.size - offset);
        const res = await this.client.send('PATCH', location!, {
          scopes,
          headers: {
            'content-type': 'application/octet-stream',
            'content-range': `${offset}-${offset + length - 1}`,
            'content-length': String(length),
          },
          body: oneShot(Readable.from(reader.take(length))),
          what: `upload chunk of ${desc.digest} to ${this.repo}`,
          ok: [202],
          retry: false,
        }).catch((err: unknown) => {
          if (err instanceof RegistryHttpError && (err.status === 416 || err.has('BLOB_UPLOAD_INVALID'))) {
            throw new UploadOutOfStepError(err.message);
          }
          throw err;
        });
        await res.body?.cancel();
        location = this.client.location(res);
        await state.save(location);
        offset += length;
      }
      reader.close();
    }, retryOptions(ctx, `upload ${desc.digest}`));
    const res = await this.client.send('PUT', withQuery(location, { digest: desc.digest }), {
      scopes,
      headers: { 'content-length': '0' },
      what: `finish upload of ${desc.digest} to ${this.repo}`,
      ok: [201],
    });
    await res.body?.cancel();
    await state.forget();
  }

  async putManifest(m: FetchedManifest, target: { root: boolean; tag?: string }, ctx: TransferContext): Promise<string> {
    const reference = (target.root && target.tag) || m.digest;
    const digest = await this.client.putManifest(this.repo, reference, m.raw, m.mediaType);
    if (digest !== m.digest) throw new Error(`${this.name} stored ${reference} as ${digest}, expected ${m.digest}`);
    ctx.onProgress?.({ type: 'manifest', digest: m.digest, mediaType: m.mediaType, reference });
    return digest;
  }
}

function withQuery(url: string, params: Record<string, string>): string {
  const u = new URL(url);
  for (const [k, v] of Object.entries(params)) u.searchParams.set(k, v);
  return u.toString();
}

/** Reports bytes read from `stream` (which starts at `start` within the blob). */
function withProgress(stream: Readable, desc: Descriptor, start: number, ctx: TransferContext): Readable {
  const report = bytesReporter(desc, ctx);
  if (!report) return stream;
  let total = start;
  // Counting in transform(), not in a 'data' listener: that would start the flow before
  // the request body reads it.
  const counter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      report((total += chunk.length));
      cb(null, chunk);
    },
  });
  pipeline(stream, counter).catch(() => undefined); // a source error destroys `counter`, which the reader sees
  return counter;
}

/**
 * A request body that can be sent once. A replay (after a 401 in the middle of an
 * upload) fails as a transient error, so the upload resumes from the registry's offset.
 */
function oneShot(body: Readable): () => Readable {
  let used = false;
  return () => {
    if (used) throw Object.assign(new Error('upload body already sent'), { code: 'ECONNRESET' });
    used = true;
    return body;
  };
}

/** Reads a stream in exact-length pieces, each a fresh async iterable for one request body. */
class ChunkReader {
  private readonly it: AsyncIterator<Buffer>;
  private leftover: Buffer | undefined;

  constructor(private readonly stream: Readable) {
    this.it = stream[Symbol.asyncIterator]();
  }

  async *take(length: number): AsyncGenerator<Buffer> {
    let remaining = length;
    while (remaining > 0) {
      let buf = this.leftover;
      this.leftover = undefined;
      if (!buf) {
        const next = await this.it.next();
        if (next.done) throw Object.assign(new Error('blob source ended early'), { code: 'ERR_STREAM_PREMATURE_CLOSE' });
        buf = next.value;
      }
      if (buf.length > remaining) {
        this.leftover = buf.subarray(remaining);
        buf = buf.subarray(0, remaining);
      }
      remaining -= buf.length;
      yield buf;
    }
  }

  close(): void {
    this.stream.destroy();
  }
}

// ---- OCI layout directory ------------------------------------------------------------

export class LayoutSource implements ImageSource {
  constructor(readonly layout: OciLayout) {}
  get name(): string {
    return this.layout.dir;
  }
  /** `reference` is a tag of index.json or a digest; '' means the layout's only image. */
  async getManifest(reference: string): Promise<FetchedManifest> {
    const desc = reference.includes(':') ? undefined : await this.layout.resolve(reference || undefined);
    const digest = desc?.digest ?? reference;
    const raw = await this.layout.readBlob(digest);
    const parsed = JSON.parse(raw.toString('utf8')) as FetchedManifest['parsed'];
    return { digest, raw, parsed, mediaType: desc?.mediaType ?? manifestMediaType(parsed) };
  }
  async openBlob(desc: Descriptor, offset: number): Promise<Readable> {
    return this.layout.openBlob(desc.digest, offset);
  }
}

export class LayoutDestination implements ImageDestination {
  /** Docker manifests already stored in their OCI form, by their original digest. */
  private readonly converted = new Map<string, Descriptor>();

  constructor(
    readonly layout: OciLayout,
    /** Store Docker schema 2 manifests in their OCI form (what skopeo and umoci read). */
    private readonly opts: { oci?: boolean } = {},
  ) {}
  get name(): string {
    return this.layout.dir;
  }

  /** Downloads into `.partial/`; every retry (or a later run) continues from what is on disk. */
  async putBlob(desc: Descriptor, source: ImageSource, ctx: TransferContext): Promise<void> {
    if (await this.layout.hasBlob(desc.digest, desc.size)) {
      ctx.onProgress?.({ type: 'blob-skipped', digest: desc.digest, size: desc.size, reason: 'exists' });
      return;
    }
    let started = false;
    await withRetries(async () => {
      const offset = await this.layout.partialLength(desc);
      if (!started) ctx.onProgress?.({ type: 'blob-start', digest: desc.digest, size: desc.size, resumeAt: offset });
      started = true;
      const stream = await source.openBlob(desc, offset);
      const complete = await this.layout.appendBlob(desc, offset, stream, bytesReporter(desc, ctx));
      if (!complete) {
        throw Object.assign(new Error(`${source.name} ended ${desc.digest} early`), { code: 'ERR_STREAM_PREMATURE_CLOSE' });
      }
    }, retryOptions(ctx, `download ${desc.digest}`));
    ctx.onProgress?.({ type: 'blob-done', digest: desc.digest, size: desc.size });
  }

  async putManifest(original: FetchedManifest, target: { root: boolean; tag?: string }, ctx: TransferContext): Promise<string> {
    const m = this.opts.oci ? toOciManifest(original, this.converted) : original;
    if (m !== original) this.converted.set(original.digest, { mediaType: m.mediaType, digest: m.digest, size: m.raw.length });
    await this.layout.writeBuffer(m.digest, m.raw);
    if (target.root) await this.layout.setTag(target.tag, { mediaType: m.mediaType, digest: m.digest, size: m.raw.length });
    ctx.onProgress?.({ type: 'manifest', digest: m.digest, mediaType: m.mediaType, reference: (target.root && target.tag) || m.digest });
    return m.digest;
  }

  async finish(): Promise<void> {
    await this.layout.cleanPartials();
  }
}
