// The cache's side of blob pulls. A blob the repository lacks is looked up upstream
// (HEAD: the upstream repository must have it before anything is served), linked at
// once when the store already holds it for another repository, and otherwise fetched
// once however many clients ask: the first GET streams the upstream's bytes to its
// client while the blob service stores them through the ordinary upload path (hash,
// fsync, verify, publish the file, then the row). The last chunk is held back until
// the digest is verified, so a corrupted blob stores nothing and fails the request.
// Other clients wait for the commit and are served from the store. Across processes
// (`--workers`, replicas on one database) a lease per blob elects the one that fetches;
// the others wait for the store to have it.

import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { PassThrough, type Writable } from 'node:stream';
import type { BlobService } from '../registry/blobs.js';
import { RegistryError } from '../registry/errors.js';
import { parseDigest, type Digest } from '../registry/names.js';
import type { Logger } from '../server/logger.js';
import { proxyRequest } from './context.js';
import { Flights } from './flights.js';
import { proxyMetrics } from './metrics.js';
import { denyPush, isCode, type ProxyHooks } from './hooks.js';
import type { Upstream } from './upstream.js';

/** How long a fetch's lease holds unless renewed (it is renewed every third of it). */
export const FILL_LEASE_MS = 30_000;
/** How often a process waiting for another's fetch looks for the stored blob. */
const FILL_POLL_MS = 100;

interface Fill {
  repository: string;
  digest: string;
  size: number;
  upstream: Upstream;
}

export function proxiedBlobs(inner: BlobService, hooks: ProxyHooks, logger: Logger): BlobService {
  const fills = new Flights<boolean>();
  const sizes = new Flights<number>();

  async function stat(repository: string, digestValue: string): Promise<{ digest: Digest; size: number }> {
    const upstream = hooks.upstreamFor(repository);
    if (!upstream) return inner.stat(repository, digestValue);
    try {
      const found = await inner.stat(repository, digestValue);
      proxyMetrics.hits.inc({ upstream: upstream.prefix, kind: 'blob' });
      return found;
    } catch (err) {
      if (!isCode(err, 'BLOB_UNKNOWN')) throw err;
    }
    proxyMetrics.misses.inc({ upstream: upstream.prefix, kind: 'blob' });
    const size = await sizes.run(`${repository}@${digestValue}`, () => upstream.blobSize(repository, digestValue));
    // Stored for another repository (a layer shared by two images): link it, fetch nothing.
    if (await inner.mount(repository, digestValue, undefined, () => true)) return inner.stat(repository, digestValue);
    const request = proxyRequest.getStore();
    if (request) request.uncachedBlob = { repository, digest: digestValue, size, upstream };
    return { digest: parseDigest(digestValue), size };
  }

  async function send(digest: Digest, out: Writable, range: { start: number; end: number } | undefined, onOpen: () => void): Promise<void> {
    const request = proxyRequest.getStore();
    const fill = request?.uncachedBlob;
    if (!fill || fill.digest !== digest.value) return inner.send(digest, out, range, onOpen);
    request.uncachedBlob = undefined;
    if (!range && !fills.get(digest.value) && (await fills.run(digest.value, () => fetchOnce(fill, { out, onOpen })))) return;
    // Someone else's fetch (or a range of the blob): wait for the store to have it.
    await fills.run(digest.value, () => fetchOnce(fill, undefined));
    await inner.mount(fill.repository, digest.value, undefined, () => true);
    return inner.send(digest, out, range, onOpen);
  }

  /**
   * Fetches the blob unless another process is fetching it, then waits until the store
   * has it. Resolves to whether it streamed the blob to `client`.
   */
  async function fetchOnce(fill: Fill, client: { out: Writable; onOpen: () => void } | undefined): Promise<boolean> {
    for (;;) {
      if (await inner.mount(fill.repository, fill.digest, undefined, () => true)) return false;
      if (await hooks.claimFill(fill.digest)) {
        const renew = setInterval(() => void hooks.claimFill(fill.digest).catch(() => undefined), FILL_LEASE_MS / 3);
        try {
          await fetchInto(fill, client);
          return client !== undefined;
        } finally {
          clearInterval(renew);
          await hooks.releaseFill(fill.digest).catch(() => undefined);
        }
      }
      await sleep(FILL_POLL_MS);
    }
  }

  /** Fetches the blob into the store, streaming it to `client` meanwhile. */
  async function fetchInto(fill: Fill, client: { out: Writable; onOpen: () => void } | undefined): Promise<void> {
    const { upstream, repository, digest, size } = fill;
    const what = `blob ${upstream.remoteName(repository)}@${digest}`;
    const { size: sent, body } = await upstream.blob(repository, digest);
    if (sent !== undefined && sent !== size) {
      body.destroy();
      throw upstream.failure(what, `it sent ${sent} bytes after announcing ${size}`);
    }
    const toStore = new PassThrough({ highWaterMark: 1 << 20 });
    // Its errors reach the store's reader, which may have stopped already: never unhandled.
    toStore.on('error', () => undefined);
    const committed = inner.putMonolithic(repository, digest, { stream: toStore, length: size });
    committed.catch(() => undefined); // awaited below; a failure must not go unhandled meanwhile
    client?.onOpen();
    let held: Buffer | undefined;
    let clientGone = !client;
    try {
      for await (const chunk of body) {
        if (held && !clientGone) clientGone = !(await writeTo(client!.out, held));
        held = chunk as Buffer;
        proxyMetrics.upstreamBytes.inc({ upstream: upstream.prefix }, held.length);
        if (!toStore.write(chunk)) await Promise.race([once(toStore, 'drain'), committed]);
      }
      toStore.end();
    } catch (err) {
      body.destroy();
      toStore.destroy(err as Error);
    }
    try {
      await committed;
    } catch (err) {
      if (!isCode(err, 'DIGEST_INVALID')) throw err;
      logger.error({ upstream: upstream.prefix, repository, digest, actual: (err as RegistryError).detail }, 'upstream sent a blob whose bytes do not match its digest: nothing stored');
      throw upstream.failure(what, 'its bytes do not match the digest; nothing was stored');
    }
    hooks.filled(upstream);
    if (client && !clientGone) {
      if (held) await writeTo(client.out, held);
      client.out.end();
    }
  }

  const overrides: Partial<Record<keyof BlobService, unknown>> = {
    stat,
    send,
    async putMonolithic(repository: string, ...rest: unknown[]) {
      denyPush(hooks, repository);
      return (inner.putMonolithic as (...a: unknown[]) => unknown)(repository, ...rest);
    },
    async startUpload(repository: string) {
      denyPush(hooks, repository);
      return inner.startUpload(repository);
    },
    mount(repository: string, ...rest: unknown[]) {
      denyPush(hooks, repository);
      return (inner.mount as (...a: unknown[]) => unknown)(repository, ...rest);
    },
  };
  // Everything else (upload steps, deletes) is the blob service's own.
  return Object.assign(Object.create(inner) as BlobService, overrides);
}

/** Writes to a client that may hang up: false once it has. */
async function writeTo(out: Writable, chunk: Buffer): Promise<boolean> {
  if (out.destroyed) return false;
  if (!out.write(chunk)) await Promise.race([once(out, 'drain'), once(out, 'close')]);
  return !out.destroyed;
}
