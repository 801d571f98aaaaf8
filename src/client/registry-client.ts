// One registry's HTTP API, as the OCI Distribution Spec defines it, with auth handled
// underneath: the first 401 teaches the client the registry's challenge (Bearer realm or
// Basic), after which every request carries a token for exactly the scopes it needs.
// Bodies stream in both directions; manifests are the only thing buffered.

import { Readable } from 'node:stream';
import { basicHeader, parseChallenge, scopesCover, TokenCache, TokenError, type Challenge } from './auth.js';
import { findCredentials, type Credentials, type CredentialsLookup } from './credentials.js';
import { digestOf, verifyBuffer } from './digest.js';
import { describeFailure } from './errors.js';
import {
  MANIFEST_ACCEPT,
  manifestMediaType,
  OCI_INDEX,
  type Descriptor,
  type FetchedManifest,
  type ImageIndex,
} from './media-types.js';
import { apiHost } from './reference.js';
import { connectionFor, isCertificateError, isNotTls, type Connection, type TlsOptions } from './tls.js';
import { withRetries, type RetryOptions } from './retry.js';

export interface ClientOptions extends TlsOptions, CredentialsLookup {
  /** Credentials to use; `null` for anonymous; default: look them up in the login stores. */
  credentials?: Credentials | null;
  userAgent?: string;
  retry?: RetryOptions;
}

/** Registries cap manifests at a few MiB (Berth and the reference at 4 MiB). */
const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

type Body = Buffer | string | Readable | URLSearchParams;

interface RequestOptions {
  scopes: string[];
  headers?: Record<string, string>;
  /** A factory, so a request can be replayed after an auth challenge or a transient failure. */
  body?: () => Body;
  /** What the request is for, in error messages ("GET manifest foo:latest"). */
  what: string;
  /** Statuses that are not failures; default any 2xx. */
  ok?: number[];
  /** Retry transient failures (default true). Large uploads resume instead. */
  retry?: boolean;
}

export const pullScope = (repo: string) => `repository:${repo}:pull`;
export const pushScope = (repo: string) => `repository:${repo}:pull,push`;
export const deleteScope = (repo: string) => `repository:${repo}:delete`;

/** Registries found to speak plain HTTP in this process, so each is probed once. */
const plainHttp = new Set<string>();

export class RegistryClient {
  private connection?: Promise<Connection>;
  private challenge?: Challenge;
  private creds?: Credentials | null;
  private readonly tokens: TokenCache;
  private readonly userAgent: string;

  constructor(
    /** `host[:port]` as in image references. */
    readonly registry: string,
    private readonly opts: ClientOptions = {},
  ) {
    this.creds = opts.credentials;
    this.userAgent = opts.userAgent ?? 'berth-client/0.1';
    this.tokens = new TokenCache(this.userAgent);
  }

  /** The API's base URL: https, or http once the registry was found to speak plain HTTP. */
  get baseUrl(): string {
    return `${plainHttp.has(this.registry) ? 'http' : 'https'}://${apiHost(this.registry)}`;
  }

  private async credentials(): Promise<Credentials | undefined> {
    if (this.creds === undefined) this.creds = (await findCredentials(this.registry, this.opts)) ?? null;
    return this.creds ?? undefined;
  }

  private async authorization(scopes: string[]): Promise<string | undefined> {
    const creds = await this.credentials();
    if (this.challenge?.scheme === 'bearer') {
      try {
        return `Bearer ${await this.tokens.get(this.challenge, scopes, creds)}`;
      } catch (err) {
        if (err instanceof TokenError && (err.status === 401 || err.status === 403)) {
          throw describeFailure({ registry: this.registry, status: 401, what: 'token', body: err.message, hadCredentials: !!creds });
        }
        throw err;
      }
    }
    if (this.challenge?.scheme === 'basic' && creds) return basicHeader(creds);
    return undefined;
  }

  /**
   * Sends one request, answering one auth challenge on the way. Returns the response
   * whatever its status; `send` is the checked form.
   */
  async request(method: string, path: string, opts: RequestOptions): Promise<Response> {
    let scopes = opts.scopes;
    for (let round = 0; ; round++) {
      const headers: Record<string, string> = { 'user-agent': this.userAgent, ...opts.headers };
      const authorization = await this.authorization(scopes);
      if (authorization) headers.authorization = authorization;
      const connection = await (this.connection ??= connectionFor(this.registry, this.opts));
      const body = opts.body?.();
      const url = path.startsWith('http') ? path : `${this.baseUrl}${path}`;
      let res: Response;
      try {
        res = await fetch(url, {
          method,
          headers,
          body: body as BodyInit | undefined,
          // Streams need half-duplex; redirects (blob storage on another host) are followed,
          // and fetch drops the Authorization header when one leaves the origin.
          ...(body instanceof Readable ? { duplex: 'half' } : {}),
          ...(connection.dispatcher ? { dispatcher: connection.dispatcher } : {}),
        } as RequestInit);
      } catch (err) {
        if (this.shouldFallBack(err, url, connection)) {
          plainHttp.add(this.registry);
          round--; // the same request again, over HTTP
          continue;
        }
        throw this.connectionError(err);
      }
      if (res.status !== 401 || round > 0) return res;
      const challenge = parseChallenge(res.headers.get('www-authenticate'));
      if (!challenge) return res;
      const creds = await this.credentials();
      // Judge by what this request sent: concurrent requests may have learned the challenge meanwhile.
      if (challenge.scheme === 'basic' && (!creds || authorization?.startsWith('Basic '))) return res;
      if (challenge.scheme === 'bearer') {
        // A token that is refused (expired early, revoked) is fetched again; a challenge
        // naming a scope we did not ask for (insufficient_scope) adds it.
        if (authorization?.startsWith('Bearer ') && this.challenge) this.tokens.forget(this.challenge, scopes);
        if (challenge.scope && !scopesCover(scopes, challenge.scope)) scopes = [...scopes, challenge.scope];
      }
      this.challenge = challenge;
      await res.body?.cancel();
    }
  }

  /** An HTTPS request to a registry that may speak plain HTTP, refused as not TLS: try HTTP. */
  private shouldFallBack(err: unknown, url: string, connection: Connection): boolean {
    if (!connection.httpFallback || !url.startsWith(`https://${this.registry}/`)) return false;
    const cause = (err as { cause?: NodeJS.ErrnoException }).cause;
    return !!cause && isNotTls(cause.code ?? '', cause.message);
  }

  /**
   * fetch's "fetch failed" says little: name the registry and the cause, and say what to
   * do about a certificate that is not trusted (--ca-cert) or a registry that speaks plain
   * HTTP (--insecure). The cause's code is kept so retries still see a transient failure.
   */
  private connectionError(err: unknown): Error {
    const cause = (err as { cause?: NodeJS.ErrnoException & { message: string } }).cause;
    if (!cause) return err as Error;
    const code = cause.code ?? '';
    let hint = '';
    if (this.baseUrl.startsWith('https:') && isCertificateError(code, cause.message)) {
      hint =
        `; to trust its certificate, pass its CA with --ca-cert FILE or put it in /etc/containers/certs.d/${this.registry}/ca.crt` +
        ' (--tls-verify=false skips the check)';
    } else if (this.baseUrl.startsWith('https:') && isNotTls(code, cause.message)) {
      hint = `; if ${this.registry} speaks plain HTTP, add --insecure (or --tls-verify=false)`;
    }
    return Object.assign(new Error(`cannot reach ${this.registry} (${this.baseUrl}): ${cause.message}${hint}`, { cause }), { code });
  }

  /** `request` that throws a RegistryHttpError on a failing status and retries transient ones. */
  async send(method: string, path: string, opts: RequestOptions): Promise<Response> {
    const once = async () => {
      const res = await this.request(method, path, opts);
      const ok = opts.ok ? opts.ok.includes(res.status) : res.status >= 200 && res.status < 300;
      if (ok) return res;
      const body = method === 'HEAD' ? '' : await res.text().catch(() => '');
      throw describeFailure({
        registry: this.registry,
        status: res.status,
        what: opts.what,
        body,
        hadCredentials: !!(await this.credentials()),
      });
    };
    return opts.retry === false ? once() : withRetries(once, this.opts.retry);
  }

  /** GET /v2/: checks the registry is there and that the credentials (if any) are accepted. */
  async ping(): Promise<void> {
    await this.send('GET', '/v2/', { scopes: [], what: 'ping' });
  }

  /** Checks credentials against the registry: the /v2/ ping with Basic, or a token for no scope. */
  async checkLogin(): Promise<void> {
    await this.ping();
    if (this.challenge?.scheme === 'bearer') await this.authorization([]);
  }

  async getManifest(repo: string, reference: string): Promise<FetchedManifest> {
    const res = await this.send('GET', `/v2/${repo}/manifests/${reference}`, {
      scopes: [pullScope(repo)],
      headers: { accept: MANIFEST_ACCEPT },
      what: `manifest ${repo}:${reference}`,
    });
    const length = Number(res.headers.get('content-length') ?? 0);
    if (length > MAX_MANIFEST_BYTES) {
      await res.body?.cancel();
      throw new Error(`manifest ${repo}:${reference} is ${length} bytes, over the ${MAX_MANIFEST_BYTES} limit`);
    }
    const raw = Buffer.from(await res.arrayBuffer());
    const parsed = JSON.parse(raw.toString('utf8')) as FetchedManifest['parsed'];
    const mediaType = manifestMediaType(parsed, res.headers.get('content-type'));
    // The identity of a manifest is the digest of its bytes; trust a header only after checking it.
    const digest = reference.includes(':') ? reference : (res.headers.get('docker-content-digest') ?? digestOf(raw));
    verifyBuffer(raw, digest);
    return { digest, mediaType, raw, parsed };
  }

  /** HEAD of a manifest: its descriptor, or undefined when the registry does not have it. */
  async headManifest(repo: string, reference: string): Promise<Descriptor | undefined> {
    const res = await this.send('HEAD', `/v2/${repo}/manifests/${reference}`, {
      scopes: [pullScope(repo)],
      headers: { accept: MANIFEST_ACCEPT },
      what: `manifest ${repo}:${reference}`,
      ok: [200, 404],
    });
    if (res.status === 404) return undefined;
    const digest = res.headers.get('docker-content-digest');
    if (!digest) {
      // Some registries leave the header out of HEAD: fetch and hash instead.
      const m = await this.getManifest(repo, reference);
      return { mediaType: m.mediaType, digest: m.digest, size: m.raw.length };
    }
    return {
      mediaType: res.headers.get('content-type')?.split(';')[0] ?? '',
      digest,
      size: Number(res.headers.get('content-length') ?? 0),
    };
  }

  /** PUT of manifest bytes under a tag or digest; returns the digest the registry computed. */
  async putManifest(repo: string, reference: string, raw: Buffer, mediaType: string): Promise<string> {
    const res = await this.send('PUT', `/v2/${repo}/manifests/${reference}`, {
      scopes: [pushScope(repo)],
      headers: { 'content-type': mediaType },
      body: () => raw,
      what: `push manifest ${repo}:${reference}`,
    });
    await res.body?.cancel();
    return res.headers.get('docker-content-digest') ?? digestOf(raw);
  }

  async deleteManifest(repo: string, reference: string): Promise<void> {
    const res = await this.send('DELETE', `/v2/${repo}/manifests/${reference}`, {
      scopes: [deleteScope(repo)],
      what: `delete ${repo}:${reference}`,
    });
    await res.body?.cancel();
  }

  /**
   * Size of a blob the repository has, or undefined. A push asks with `forPush`, so the
   * check and the upload after it share one token (pull,push) instead of fetching two.
   */
  async blobSize(repo: string, digest: string, opts: { forPush?: boolean } = {}): Promise<number | undefined> {
    const res = await this.send('HEAD', `/v2/${repo}/blobs/${digest}`, {
      scopes: [opts.forPush ? pushScope(repo) : pullScope(repo)],
      what: `blob ${repo}@${digest}`,
      ok: [200, 404],
    });
    return res.status === 200 ? Number(res.headers.get('content-length') ?? -1) : undefined;
  }

  /**
   * A blob's bytes from `offset` on. Asks with Range when resuming; a registry that
   * ignores Range answers 200 with the whole blob, whose first bytes are skipped here.
   */
  async openBlob(repo: string, digest: string, offset = 0): Promise<Readable> {
    const res = await this.send('GET', `/v2/${repo}/blobs/${digest}`, {
      scopes: [pullScope(repo)],
      // identity: Range offsets must count the blob's own bytes, not a re-encoding of them.
      headers: { 'accept-encoding': 'identity', ...(offset > 0 ? { range: `bytes=${offset}-` } : {}) },
      what: `blob ${repo}@${digest}`,
    });
    const stream = Readable.fromWeb(res.body as import('node:stream/web').ReadableStream);
    if (offset > 0 && res.status === 200) return skipBytes(stream, offset);
    return stream;
  }

  /** A small blob (an image config) in memory, verified; larger than `maxBytes` is an error. */
  async readBlob(repo: string, digest: string, maxBytes = MAX_MANIFEST_BYTES): Promise<Buffer> {
    const chunks: Buffer[] = [];
    let total = 0;
    for await (const chunk of await this.openBlob(repo, digest)) {
      total += (chunk as Buffer).length;
      if (total > maxBytes) throw new Error(`blob ${digest} is larger than ${maxBytes} bytes`);
      chunks.push(chunk as Buffer);
    }
    const data = Buffer.concat(chunks);
    verifyBuffer(data, digest);
    return data;
  }

  /**
   * Cross-repository mount. Returns true when the registry linked the blob (201); on 202
   * (it could not mount) the upload session it opened is cancelled and false returned.
   */
  async mountBlob(repo: string, digest: string, from: string): Promise<boolean> {
    const q = new URLSearchParams({ mount: digest, from });
    const res = await this.send('POST', `/v2/${repo}/blobs/uploads/?${q}`, {
      scopes: [pushScope(repo), pullScope(from)],
      what: `mount ${digest} from ${from} into ${repo}`,
      ok: [201, 202],
    });
    await res.body?.cancel();
    if (res.status === 201) return true;
    const location = res.headers.get('location');
    if (location) await this.cancelUpload(repo, location).catch(() => undefined);
    return false;
  }

  /** Opens an upload session; returns its absolute URL. */
  async startUpload(repo: string): Promise<string> {
    const res = await this.send('POST', `/v2/${repo}/blobs/uploads/`, {
      scopes: [pushScope(repo)],
      what: `start upload to ${repo}`,
      ok: [202],
    });
    await res.body?.cancel();
    return this.location(res);
  }

  /** The upload session's absolute URL from a Location header (which may be relative). */
  location(res: Response): string {
    const location = res.headers.get('location');
    if (!location) throw new Error(`${this.registry} sent no Location for an upload`);
    return new URL(location, this.baseUrl).toString();
  }

  /** How many bytes of an upload session the registry holds (from its Range header). */
  async uploadOffset(repo: string, location: string): Promise<number> {
    const res = await this.send('GET', location, { scopes: [pushScope(repo)], what: `upload status in ${repo}`, ok: [204] });
    const range = res.headers.get('range');
    const m = range && /^(?:bytes=)?0-(\d+)$/.exec(range);
    return m ? Number(m[1]) + 1 : 0;
  }

  async cancelUpload(repo: string, location: string): Promise<void> {
    const res = await this.send('DELETE', location, { scopes: [pushScope(repo)], what: `cancel upload in ${repo}`, retry: false });
    await res.body?.cancel();
  }

  /** All tags of a repository, following `Link` pages. */
  async tags(repo: string, pageSize = 1000): Promise<string[]> {
    const out: string[] = [];
    for await (const page of this.pages(`/v2/${repo}/tags/list?n=${pageSize}`, [pullScope(repo)], `tags of ${repo}`)) {
      out.push(...(((page as { tags?: string[] | null }).tags) ?? []));
    }
    return out;
  }

  /** All repositories, following `Link` pages. */
  async catalog(pageSize = 1000): Promise<string[]> {
    const out: string[] = [];
    for await (const page of this.pages(`/v2/_catalog?n=${pageSize}`, ['registry:catalog:*'], 'catalog')) {
      out.push(...(((page as { repositories?: string[] | null }).repositories) ?? []));
    }
    return out;
  }

  private async *pages(first: string, scopes: string[], what: string): AsyncGenerator<unknown> {
    let next: string | undefined = first;
    while (next) {
      const res: Response = await this.send('GET', next, { scopes, what });
      yield await res.json();
      // Link: </v2/_catalog?last=x&n=100>; rel="next"
      const link = res.headers.get('link');
      const m = link && /<([^>]+)>\s*;\s*rel="?next"?/.exec(link);
      next = m ? new URL(m[1]!, this.baseUrl).toString() : undefined;
    }
  }

  /**
   * Manifests whose subject is `digest`: the referrers API, or on a registry without it
   * (404) the spec's fallback, an index tagged `sha256-<hex>`.
   */
  async referrers(repo: string, digest: string, artifactType?: string): Promise<Descriptor[]> {
    const q = artifactType ? `?artifactType=${encodeURIComponent(artifactType)}` : '';
    const res = await this.send('GET', `/v2/${repo}/referrers/${digest}${q}`, {
      scopes: [pullScope(repo)],
      headers: { accept: OCI_INDEX },
      what: `referrers of ${repo}@${digest}`,
      ok: [200, 404],
    });
    const filterLocally = (list: Descriptor[]) => (artifactType ? list.filter((d) => d.artifactType === artifactType) : list);
    if (res.status === 200) {
      const index = (await res.json()) as ImageIndex;
      // Filter again when the registry did not (no OCI-Filters-Applied header).
      const filtered = res.headers.get('oci-filters-applied')?.includes('artifactType');
      return filtered ? index.manifests : filterLocally(index.manifests ?? []);
    }
    await res.body?.cancel();
    const fallbackTag = digest.replace(':', '-');
    const head = await this.headManifest(repo, fallbackTag);
    if (!head) return [];
    const index = (await this.getManifest(repo, fallbackTag)).parsed as ImageIndex;
    return filterLocally(index.manifests ?? []);
  }
}

/** Drops the first `n` bytes of a stream. */
function skipBytes(stream: Readable, n: number): Readable {
  let toSkip = n;
  return Readable.from(
    (async function* () {
      for await (const chunk of stream) {
        const buf = chunk as Buffer;
        if (toSkip >= buf.length) {
          toSkip -= buf.length;
          continue;
        }
        yield toSkip > 0 ? buf.subarray(toSkip) : buf;
        toSkip = 0;
      }
    })(),
  );
}

