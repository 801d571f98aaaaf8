// What the cache's service layers share: which upstream serves a repository, the
// refusal of pushes into a proxied prefix, and the notice that the cache grew.

import { RegistryError, type ErrorCode } from '../registry/errors.js';
import type { Upstream } from './upstream.js';

export interface ProxyHooks {
  /** The upstream whose prefix holds `repository`, if any. */
  upstreamFor(repository: string): Upstream | undefined;
  /** Called when something was stored from `upstream` (eviction may be due). */
  filled(upstream: Upstream): void;
  /** Called on every pull of a cached manifest, for least-recently-pulled eviction. */
  pulled(repository: string, digest: string): void;
  /** Takes or renews this process's right to fetch a blob (one fetch across workers and replicas). */
  claimFill(digest: string): Promise<boolean>;
  releaseFill(digest: string): Promise<void>;
}

/** Pushes into a proxied prefix are refused: the upstream owns those repositories. */
export function denyPush(hooks: ProxyHooks, repository: string): void {
  const upstream = hooks.upstreamFor(repository);
  if (!upstream) return;
  throw new RegistryError(
    'DENIED',
    `repository ${repository} is a pull-through cache of ${upstream.config.url} (proxy prefix "${upstream.prefix}"): pushes are refused there; push to a repository outside the proxied prefixes`,
    { name: repository, prefix: upstream.prefix },
  );
}

export function isCode(err: unknown, code: ErrorCode): boolean {
  return err instanceof RegistryError && err.code === code;
}
