// The pull-through cache: a layer around the registry's blob and manifest services
// that serves repositories under each configured prefix from an upstream registry
// (like distribution's registry/proxy, but beside the registry's own repositories,
// which still take pushes). Cached content is stored through the same services as a
// push, so garbage collection, usage and the catalog see it like anything else.
//
// Mirror mode: requests are rewritten before routing so clients need not name the
// prefix. containerd's hosts.toml mirrors send `?ns=<registry>` (`/v2/library/busybox/...?ns=docker.io`
// -> `/v2/docker.io/library/busybox/...`); the docker daemon's `registry-mirrors` send
// Docker Hub names as they are, so `library/...` goes to the `docker.io` upstream.
// podman's registries.conf mirrors name the prefix in their location (`host:5000/docker.io`).

import type { Registry } from '../registry/registry.js';
import type { Logger } from '../server/logger.js';
import { proxiedBlobs } from './blobs.js';
import type { UpstreamConfig } from './config.js';
import { proxyRequest } from './context.js';
import { CacheKeeper } from './eviction.js';
import type { ProxyHooks } from './hooks.js';
import { proxiedManifests } from './manifests.js';
import { proxiedTags } from './tags.js';
import { FILL_LEASE_MS } from './blobs.js';
import { newHolder } from '../registry/leases.js';
import { Upstream } from './upstream.js';

export type { UpstreamConfig } from './config.js';

type Fetch<E> = (request: Request, env: E) => Response | Promise<Response>;

export interface PullThroughCache {
  upstreams: Upstream[];
  /** Wraps the app's fetch: mirror rewrites, and the request's context for the cache. */
  wrapFetch<E>(fetch: Fetch<E>): Fetch<E>;
  /** Resolves when pending evictions are done. */
  settled(): Promise<void>;
  /** Stops its timers and writes the pulls not recorded yet. */
  close(): Promise<void>;
}

/** Puts the cache around `registry`'s services (in place) for the configured upstreams. */
export function enablePullThroughCache(registry: Registry, configs: UpstreamConfig[], logger: Logger): PullThroughCache {
  const upstreams = configs.map((c) => new Upstream(c, logger));
  const holder = newHolder();
  const keeper = new CacheKeeper(registry.pullCache, upstreams, logger);
  const hooks: ProxyHooks = {
    upstreamFor: (repository) => upstreams.find((u) => repository.startsWith(`${u.prefix}/`)),
    filled: (upstream) => keeper.schedule(upstream),
    pulled: (repository, digest) => keeper.pulled(repository, digest),
    claimFill: (digest) => registry.pullCache.claimFill(digest, holder, FILL_LEASE_MS),
    releaseFill: (digest) => registry.pullCache.releaseFill(digest, holder),
  };
  registry.blobs = proxiedBlobs(registry.blobs, hooks, logger);
  registry.manifests = proxiedManifests(registry.manifests, hooks, logger);
  registry.tags = proxiedTags(registry.tags, hooks, logger);
  const dockerHub = upstreams.find((u) => u.prefix === 'docker.io');

  function mirrorPath(path: string, ns: string | null): string | undefined {
    const m = /^\/v2\/(?!_)(.+)$/.exec(path);
    if (!m) return undefined;
    const upstream = ns ? upstreams.find((u) => u.prefix === ns) : m[1]!.startsWith('library/') ? dockerHub : undefined;
    return upstream ? `/v2/${upstream.prefix}/${m[1]}` : undefined;
  }

  return {
    upstreams,
    wrapFetch<E>(fetch: Fetch<E>): Fetch<E> {
      return (request, env) => {
        const context = { accept: request.headers.get('accept') ?? undefined };
        const url = new URL(request.url);
        const path = mirrorPath(url.pathname, url.searchParams.get('ns'));
        if (path) {
          url.pathname = path;
          url.searchParams.delete('ns');
          // Bodies are read from the Node request (env), never from this Request.
          request = new Request(url, { method: request.method, headers: request.headers });
        }
        return proxyRequest.run(context, () => fetch(request, env));
      };
    },
    settled: () => keeper.settled(),
    async close() {
      for (const u of upstreams) u.close();
      await keeper.settled();
      await keeper.close();
    },
  };
}
