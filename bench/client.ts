// A minimal registry client for the benchmark, on node:http with a keep-alive agent
// (one socket per concurrent client), speaking only what the workloads need. Works the
// same against Berth and the reference registry, whose upload Locations are absolute
// URLs carrying a `_state` query.

import http from 'node:http';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Worker } from 'node:worker_threads';

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

export class BenchClient {
  readonly agent: http.Agent;

  constructor(
    readonly baseUrl: string,
    concurrency: number,
  ) {
    this.agent = new http.Agent({ keepAlive: true, maxSockets: concurrency, maxFreeSockets: concurrency });
  }

  close(): void {
    this.agent.destroy();
  }

  /** One request; the body is a Buffer or a stream. Throws unless the status is `expect`. */
  request(
    method: string,
    pathOrUrl: string,
    opts: { headers?: http.OutgoingHttpHeaders; body?: Buffer | Readable; expect?: number; sink?: (res: http.IncomingMessage) => Promise<void> } = {},
  ): Promise<Reply> {
    const url = new URL(pathOrUrl, this.baseUrl);
    return new Promise<Reply>((resolve, reject) => {
      const req = http.request(url, { method, agent: this.agent, headers: opts.headers }, (res) => {
        const done = (body: Buffer) => {
          if (opts.expect !== undefined && res.statusCode !== opts.expect) {
            reject(new Error(`${method} ${url.pathname}: expected ${opts.expect}, got ${res.statusCode}: ${body.toString('utf8').slice(0, 300)}`));
          } else {
            resolve({ status: res.statusCode!, headers: res.headers, body });
          }
        };
        if (opts.sink && (opts.expect === undefined || res.statusCode === opts.expect)) {
          opts.sink(res).then(() => done(Buffer.alloc(0)), reject);
          return;
        }
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => done(Buffer.concat(chunks)));
        res.on('error', reject);
      });
      req.on('error', reject);
      const body = opts.body;
      if (body === undefined) req.end();
      else if (Buffer.isBuffer(body)) req.end(body);
      else pipeline(body, req).catch(reject);
    });
  }

  /** POST /blobs/uploads/: the Location of a new upload session. */
  async startUpload(repo: string): Promise<URL> {
    const r = await this.request('POST', `/v2/${repo}/blobs/uploads/`, { headers: { 'Content-Length': '0' }, expect: 202 });
    return this.location(r);
  }

  /** POST then PUT with the whole body: how clients push a blob in one stream. */
  async pushBlob(repo: string, digest: string, size: number, body: Buffer | Readable): Promise<void> {
    const location = await this.startUpload(repo);
    location.searchParams.set('digest', digest);
    await this.request('PUT', location.href, {
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(size) },
      body,
      expect: 201,
    });
  }

  /** POST, one PATCH per chunk with Content-Range, then a PUT without body. */
  async pushChunked(repo: string, digest: string, size: number, chunkSize: number, chunk: (start: number, end: number) => Readable): Promise<void> {
    let location = await this.startUpload(repo);
    for (let start = 0; start < size; start += chunkSize) {
      const end = Math.min(start + chunkSize, size);
      const r = await this.request('PATCH', location.href, {
        headers: {
          'Content-Type': 'application/octet-stream',
          'Content-Length': String(end - start),
          'Content-Range': `${start}-${end - 1}`,
        },
        body: chunk(start, end),
        expect: 202,
      });
      location = this.location(r);
    }
    location.searchParams.set('digest', digest);
    await this.request('PUT', location.href, { headers: { 'Content-Length': '0' }, expect: 201 });
  }

  /**
   * GETs a blob, hashing it as it arrives in a second thread (see hash-worker.ts); throws
   * when the digest does not match. Resolves to its size.
   */
  async pullVerified(repo: string, digest: string): Promise<number> {
    const hasher = new Worker(new URL('./hash-worker.js', import.meta.url));
    try {
      let size = 0;
      await this.request('GET', `/v2/${repo}/blobs/${digest}`, { expect: 200, sink: (res) => hashInWorker(res, hasher, (n) => (size += n)) });
      const hex = await new Promise<string>((resolve, reject) => {
        hasher.on('message', (m: { digest?: string }) => m.digest && resolve(m.digest));
        hasher.once('error', reject);
        hasher.postMessage('end');
      });
      if (`sha256:${hex}` !== digest) throw new Error(`pulled sha256:${hex}, expected ${digest}`);
      return size;
    } finally {
      await hasher.terminate();
    }
  }

  /** Cross-repository mount; true when the registry mounted (201). */
  async mount(repo: string, digest: string, from: string): Promise<boolean> {
    const r = await this.request('POST', `/v2/${repo}/blobs/uploads/?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(from)}`, {
      headers: { 'Content-Length': '0' },
    });
    if (r.status === 201) return true;
    if (r.status === 202) {
      // Not mounted: the registry opened an upload instead; drop it.
      await this.request('DELETE', this.location(r).href);
      return false;
    }
    throw new Error(`mount ${digest} into ${repo}: ${r.status} ${r.body.toString('utf8').slice(0, 300)}`);
  }

  async putManifest(repo: string, reference: string, manifest: Buffer): Promise<void> {
    await this.request('PUT', `/v2/${repo}/manifests/${reference}`, {
      headers: { 'Content-Type': OCI_MANIFEST, 'Content-Length': String(manifest.length) },
      body: manifest,
      expect: 201,
    });
  }

  private location(r: Reply): URL {
    const loc = r.headers.location;
    if (!loc) throw new Error(`no Location in a ${r.status} reply`);
    return new URL(loc, this.baseUrl);
  }
}

/** Chunks go to the hashing thread in batches of about this size; at most HASH_IN_FLIGHT bytes wait there. */
const HASH_BATCH = 1 << 20;
const HASH_IN_FLIGHT = 8 << 20;

/**
 * Hands a response body to the hashing thread, moving each chunk's memory there
 * (transferred, not copied) in batches of about 1 MiB, and pauses the response while
 * too much waits. Node gives every body chunk an ArrayBuffer of its own, so nothing is
 * copied or allocated here: joining chunks into fresh 1 MiB buffers cost the client a
 * page fault per 4 KiB (on this kind of VM, about 2 s per GiB of new memory) and capped
 * the pull near 0.9 GB/s whatever the server did.
 */
function hashInWorker(res: http.IncomingMessage, hasher: Worker, count: (n: number) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    let batch: ArrayBuffer[] = [];
    let batched = 0;
    let inFlight = 0;
    const flush = () => {
      if (batched === 0) return;
      inFlight += batched;
      hasher.postMessage(batch, batch);
      batch = [];
      batched = 0;
      if (inFlight > HASH_IN_FLIGHT) res.pause();
    };
    hasher.on('message', (m: { ack?: number }) => {
      if (m.ack === undefined) return;
      inFlight -= m.ack;
      if (inFlight <= HASH_IN_FLIGHT / 2 && res.isPaused()) res.resume();
    });
    hasher.once('error', reject);
    res.on('data', (chunk: Buffer) => {
      count(chunk.length);
      const own = chunk.byteOffset === 0 && chunk.byteLength === chunk.buffer.byteLength;
      batch.push((own ? chunk.buffer : chunk.buffer.slice(chunk.byteOffset, chunk.byteOffset + chunk.byteLength)) as ArrayBuffer);
      batched += chunk.length;
      if (batched >= HASH_BATCH) flush();
    });
    res.on('end', () => {
      flush();
      resolve();
    });
    res.on('error', reject);
  });
}

/** Runs `task(i)` for i in [0, count) with `concurrency` loops at once. */
export async function forEachConcurrently(count: number, concurrency: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, count) }, async () => {
      while (next < count) await task(next++);
    }),
  );
}
