// The cache's side of manifest pulls. By digest: from the store once it is there (a
// digest names fixed bytes, so it never goes upstream again). By tag: from the store
// while the tag was checked within `tagTtl`; after that a HEAD upstream compares the
// digest, and only a moved tag is fetched again. When the upstream cannot be asked, an
// expired tag is served as it is (logged, and counted in berth_proxy_stale_served_total).
// Fetched manifests are stored through the manifest service like a push, before the
// blobs they name (those come when clients ask for them).

import type { ManifestService, StoredManifest } from '../registry/manifests.js';
import { RegistryError } from '../registry/errors.js';
import { looksLikeDigest } from '../registry/names.js';
import type { Logger } from '../server/logger.js';
import { proxyRequest } from './context.js';
import { Flights } from './flights.js';
import { denyPush, isCode, type ProxyHooks } from './hooks.js';
import { proxyMetrics } from './metrics.js';
import type { Upstream } from './upstream.js';

export function proxiedManifests(inner: ManifestService, hooks: ProxyHooks, logger: Logger): ManifestService {
  const fetches = new Flights<StoredManifest>();
  const checks = new Flights<string | undefined>();
  /** When each cached tag (`repository:tag`) was last found current upstream; after a restart, every tag is checked once. */
  const checkedAt = new Map<string, number>();

  async function resolve(repository: string, reference: string): Promise<StoredManifest> {
    const upstream = hooks.upstreamFor(repository);
    if (!upstream) return inner.resolve(repository, reference);
    let local: StoredManifest | undefined;
    try {
      local = await inner.resolve(repository, reference);
    } catch (err) {
      if (!isCode(err, 'MANIFEST_UNKNOWN')) throw err;
    }
    const tagKey = `${repository}:${reference}`;
    if (local && (looksLikeDigest(reference) || Date.now() - (checkedAt.get(tagKey) ?? 0) < upstream.config.tagTtl)) {
      return served(upstream, repository, local, 'hit');
    }
    const accept = proxyRequest.getStore()?.accept;
    if (local) {
      let current: string | undefined;
      try {
        current = await checks.run(`${tagKey}|${accept ?? ''}`, async () => (await upstream.manifest('HEAD', repository, reference, accept))?.digest);
      } catch (err) {
        proxyMetrics.stale.inc({ upstream: upstream.prefix });
        logger.warn({ upstream: upstream.prefix, repository, tag: reference, digest: local.digest, err: (err as Error).message }, 'upstream unavailable: serving a tag past its tagTtl from the cache');
        return served(upstream, repository, local, 'hit');
      }
      if (current === undefined) {
        logger.warn({ upstream: upstream.prefix, repository, tag: reference }, 'the upstream no longer has this tag: serving the cached one');
      }
      if (current === undefined || current === local.digest) {
        checkedAt.set(tagKey, Date.now());
        return served(upstream, repository, local, 'hit');
      }
    }
    const fetched = await fetches.run(`${tagKey}|${accept ?? ''}`, () => fetchManifest(upstream, repository, reference, accept));
    if (!looksLikeDigest(reference)) checkedAt.set(tagKey, Date.now());
    return served(upstream, repository, fetched, 'miss');
  }

  async function fetchManifest(upstream: Upstream, repository: string, reference: string, accept: string | undefined): Promise<StoredManifest> {
    const got = await upstream.manifest('GET', repository, reference, accept);
    if (!got) {
      throw new RegistryError('MANIFEST_UNKNOWN', `manifest unknown to registry and to the upstream ${upstream.describe()}`, { name: repository, reference });
    }
    const tag = looksLikeDigest(reference) ? got.digest : reference;
    await inner.put(repository, tag, got.mediaType, got.bytes!, [], { referencesFetchedLater: true });
    logger.info({ upstream: upstream.prefix, repository, reference, digest: got.digest }, 'cached a manifest from upstream');
    hooks.filled(upstream);
    return inner.resolve(repository, got.digest);
  }

  function served(upstream: Upstream, repository: string, m: StoredManifest, kind: 'hit' | 'miss'): StoredManifest {
    (kind === 'hit' ? proxyMetrics.hits : proxyMetrics.misses).inc({ upstream: upstream.prefix, kind: 'manifest' });
    hooks.pulled(repository, m.digest);
    return m;
  }

  const overrides: Partial<Record<keyof ManifestService, unknown>> = {
    resolve,
    async put(repository: string, ...rest: unknown[]) {
      denyPush(hooks, repository);
      return (inner.put as (...a: unknown[]) => unknown)(repository, ...rest);
    },
  };
  // Reads of stored bytes, deletes (an admin may purge a cached image), tags, catalog
  // and referrers are the manifest service's own.
  return Object.assign(Object.create(inner) as ManifestService, overrides);
}
