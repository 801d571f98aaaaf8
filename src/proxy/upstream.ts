// One upstream registry as the cache sees it: manifests and blobs fetched with the
// client module's RegistryClient (its auth challenge handling: anonymous and credential
// Bearer tokens, Basic), the client's Accept list passed on, Docker Hub's rate-limit
// headers logged and counted, and every failure turned into an error that names the
// upstream and says why.

import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { ReadableStream } from 'node:stream/web';
import { pullScope, RegistryClient } from '../client/registry-client.js';
import { MANIFEST_ACCEPT } from '../client/media-types.js';
import { RegistryHttpError } from '../client/errors.js';
import { RegistryError } from '../registry/errors.js';
import { MAX_MANIFEST_BYTES } from '../registry/manifest.js';
import type { Logger } from '../server/logger.js';
import { upstreamCredentials, type UpstreamConfig } from './config.js';
import { proxyMetrics } from './metrics.js';
import { useUpstreamTransport } from './transport.js';

/** A tags list answer is JSON of tag names: Docker Hub's largest run to a few hundred KiB. */
const MAX_TAGS_LIST_BYTES = 4 << 20;
/** Tags gathered at most for a list without `n`, as the registry's own lists cap `n`. */
const MAX_TAGS = 10_000;

export interface UpstreamManifest {
  digest: string;
  mediaType: string;
  size: number;
  /** The bytes, for a GET. */
  bytes?: Buffer;
}

export interface UpstreamBlob {
  /** Content-Length, when the upstream sent one. */
  size?: number;
  body: Readable;
}

export class Upstream {
  readonly prefix: string;
  private readonly base: string;
  private readonly client: RegistryClient;
  private readonly releaseTransport: () => void;

  constructor(
    readonly config: UpstreamConfig,
    private readonly logger: Logger,
  ) {
    this.prefix = config.prefix;
    this.base = config.url.replace(/\/+$/, '');
    // Named by its URL, not `host:port`: requests go to absolute URLs under it, so the
    // client's HTTPS-then-HTTP probing and its certs.d lookup (a client machine's
    // settings) do not apply; TLS trust and timeouts come from transport.ts.
    this.client = new RegistryClient(this.base, {
      credentials: upstreamCredentials(config) ?? null,
      userAgent: 'berth-proxy/0.1',
    });
    this.releaseTransport = useUpstreamTransport(this.base, config.caFile);
  }

  close(): void {
    this.releaseTransport();
  }

  /**
   * The upstream's name of a local repository under the prefix (`docker.io/library/x` ->
   * `library/x`). Under `docker.io`, a one-part name is an official image, as docker
   * reads it: `docker.io/busybox` -> `library/busybox`.
   */
  remoteName(repository: string): string {
    const name = repository.slice(this.prefix.length + 1);
    return this.prefix === 'docker.io' && !name.includes('/') ? `library/${name}` : name;
  }

  /**
   * GET or HEAD of a manifest by tag or digest, with the client's Accept list (so
   * indexes and artifacts come back as they are); undefined when the upstream has none.
   */
  async manifest(method: 'GET' | 'HEAD', repository: string, reference: string, accept: string | undefined): Promise<UpstreamManifest | undefined> {
    const remote = this.remoteName(repository);
    const res = await this.send(method, 'manifest', remote, `/v2/${remote}/manifests/${reference}`, { accept: accept || MANIFEST_ACCEPT });
    this.noteRateLimit(res, remote);
    if (res.status === 404) {
      await res.body?.cancel();
      return undefined;
    }
    await this.checkStatus(res, `manifest ${remote}:${reference}`);
    const mediaType = (res.headers.get('content-type') ?? '').split(';')[0]!.trim();
    const headerDigest = res.headers.get('docker-content-digest') ?? undefined;
    if (method === 'HEAD') {
      await res.body?.cancel();
      const digest = reference.includes(':') ? reference : headerDigest;
      if (!digest) throw this.failure(`manifest ${remote}:${reference}`, 'the HEAD answer has no Docker-Content-Digest');
      return { digest, mediaType, size: Number(res.headers.get('content-length') ?? 0) };
    }
    const bytes = await readLimited(res, MAX_MANIFEST_BYTES, () => this.failure(`manifest ${remote}:${reference}`, `larger than ${MAX_MANIFEST_BYTES} bytes`));
    // The identity of a manifest is the hash of its bytes: a header is only a claim.
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    const claimed = reference.includes(':') ? reference : headerDigest;
    if (claimed?.startsWith('sha256:') && claimed !== digest) {
      throw this.failure(`manifest ${remote}:${reference}`, `its bytes hash to ${digest}, not ${claimed}`);
    }
    return { digest, mediaType, size: bytes.length, bytes };
  }

  /**
   * All the upstream repository's tags, sorted, following its pages (up to MAX_TAGS).
   * The cache pages them itself: registries differ in how they page (the reference
   * registry 2.8 ignores `n` and does not sort).
   */
  async tags(repository: string): Promise<string[]> {
    const remote = this.remoteName(repository);
    const tags = new Set<string>();
    for (let path: string | undefined = `/v2/${remote}/tags/list`; path && tags.size < MAX_TAGS; ) {
      const res = await this.send('GET', 'tags', remote, path, { accept: 'application/json' });
      if (res.status === 404) {
        await res.body?.cancel();
        throw new RegistryError('NAME_UNKNOWN', `repository name not known to registry or to the upstream ${this.describe()}`, { name: repository });
      }
      await this.checkStatus(res, `tags of ${remote}`);
      const body = await readLimited(res, MAX_TAGS_LIST_BYTES, () => this.failure(`tags of ${remote}`, `the list is larger than ${MAX_TAGS_LIST_BYTES} bytes`));
      let page: unknown;
      try {
        page = (JSON.parse(body.toString('utf8')) as { tags?: unknown }).tags ?? [];
      } catch {
        throw this.failure(`tags of ${remote}`, 'the answer is not a tags list');
      }
      if (!Array.isArray(page)) throw this.failure(`tags of ${remote}`, 'the answer is not a tags list');
      const before = tags.size;
      for (const t of page) if (typeof t === 'string') tags.add(t);
      // Link: </v2/<name>/tags/list?n=100&last=x>; rel="next" (relative to the upstream).
      const next = /<([^>]+)>\s*;\s*rel="?next"?/.exec(res.headers.get('link') ?? '')?.[1];
      const url = next && tags.size > before ? new URL(next, `${this.base}/`) : undefined;
      path = url && `${url.pathname}${url.search}`;
    }
    return [...tags].sort();
  }

  /** The size of a blob the upstream repository has; BLOB_UNKNOWN when it has none. */
  async blobSize(repository: string, digest: string): Promise<number> {
    const remote = this.remoteName(repository);
    const res = await this.send('HEAD', 'blob', remote, `/v2/${remote}/blobs/${digest}`, {});
    await res.body?.cancel();
    if (res.status === 404) throw this.blobUnknown(digest);
    await this.checkStatus(res, `blob ${remote}@${digest}`);
    const length = Number(res.headers.get('content-length'));
    if (!Number.isSafeInteger(length) || length < 0) throw this.failure(`blob ${remote}@${digest}`, 'the HEAD answer has no Content-Length');
    return length;
  }

  /** A blob's bytes as the upstream sends them (the caller verifies the digest). */
  async blob(repository: string, digest: string): Promise<UpstreamBlob> {
    const remote = this.remoteName(repository);
    const res = await this.send('GET', 'blob', remote, `/v2/${remote}/blobs/${digest}`, { 'accept-encoding': 'identity' });
    if (res.status === 404) {
      await res.body?.cancel();
      throw this.blobUnknown(digest);
    }
    await this.checkStatus(res, `blob ${remote}@${digest}`);
    const length = res.headers.get('content-length');
    const body = Readable.fromWeb(res.body as ReadableStream);
    return { size: length === null ? undefined : Number(length), body };
  }

  private blobUnknown(digest: string): RegistryError {
    return new RegistryError('BLOB_UNKNOWN', `blob unknown to registry and to the upstream ${this.describe()}`, { digest });
  }

  describe(): string {
    return `${this.prefix} (${this.base})`;
  }

  private async send(method: string, kind: string, remote: string, path: string, headers: Record<string, string>): Promise<Response> {
    try {
      const res = await this.client.request(method, `${this.base}${path}`, { scopes: [pullScope(remote)], headers, what: `${kind} ${remote}` });
      proxyMetrics.upstreamRequests.inc({ upstream: this.prefix, kind, method, status: String(res.status) });
      return res;
    } catch (err) {
      proxyMetrics.upstreamRequests.inc({ upstream: this.prefix, kind, method, status: 'error' });
      if (err instanceof RegistryError) throw err;
      // The token endpoint refused the credentials (or anonymous access).
      if (err instanceof RegistryHttpError && (err.status === 401 || err.status === 403)) throw this.failure(`${kind} ${remote}`, refused(err.status));
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw this.failure(`${kind} ${remote}`, cause?.code ?? cause?.message ?? (err as Error).message);
    }
  }

  private async checkStatus(res: Response, what: string): Promise<void> {
    if (res.ok) return;
    const text = await res.text().catch(() => '');
    const detail = text.trim().slice(0, 200);
    if (res.status === 429) {
      throw new RegistryError('TOOMANYREQUESTS', `the upstream ${this.describe()} refused ${what}: too many requests${detail ? ` (${detail})` : ''}`, undefined, {
        headers: res.headers.get('retry-after') ? { 'Retry-After': res.headers.get('retry-after')! } : {},
      });
    }
    const why = res.status === 401 || res.status === 403 ? refused(res.status) : `${res.status}${detail ? `: ${detail}` : ''}`;
    throw this.failure(what, why);
  }

  /** The upstream failed or cannot be reached: 502, naming it and the reason. */
  failure(what: string, why: string): RegistryError {
    return new RegistryError('UNKNOWN', `the upstream ${this.describe()} could not be asked for ${what}: ${why}`, { upstream: this.prefix }, { status: 502 });
  }

  /** Docker Hub's `RateLimit-Limit: 100;w=21600` and `RateLimit-Remaining: 76;w=21600`. */
  private noteRateLimit(res: Response, remote: string): void {
    const limit = parseLimit(res.headers.get('ratelimit-limit'));
    const remaining = parseLimit(res.headers.get('ratelimit-remaining'));
    if (limit === undefined && remaining === undefined) return;
    if (limit !== undefined) proxyMetrics.rateLimit.set({ upstream: this.prefix }, limit);
    if (remaining !== undefined) proxyMetrics.rateRemaining.set({ upstream: this.prefix }, remaining);
    this.logger.info({ upstream: this.prefix, repository: remote, rateLimit: limit, rateRemaining: remaining, source: res.headers.get('docker-ratelimit-source') ?? undefined }, 'upstream rate limit');
  }
}

function refused(status: number): string {
  return `${status}: access refused to the proxy's credentials (username and password of this proxy entry), or to anonymous pulls without them`;
}

function parseLimit(header: string | null): number | undefined {
  const m = header && /^\s*(\d+)/.exec(header);
  return m ? Number(m[1]) : undefined;
}

async function readLimited(res: Response, limit: number, tooLarge: () => Error): Promise<Buffer> {
  if (Number(res.headers.get('content-length') ?? 0) > limit) {
    await res.body?.cancel();
    throw tooLarge();
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    total += chunk.length;
    if (total > limit) throw tooLarge();
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks);
}
