// Tags lists of proxied repositories come from the upstream, as the reference
// registry's proxy answers them (a cache holds only the tags pulled so far); while the
// upstream cannot be asked, the cached tags are listed instead, with a warning.

import type { TagService, Page } from '../registry/manifests.js';
import type { Logger } from '../server/logger.js';
import type { ProxyHooks } from './hooks.js';

export function proxiedTags(inner: TagService, hooks: ProxyHooks, logger: Logger): TagService {
  async function list(repository: string, last: string | undefined, n: number | undefined): Promise<Page> {
    const upstream = hooks.upstreamFor(repository);
    if (!upstream) return inner.list(repository, last, n);
    try {
      const after = (await upstream.tags(repository)).filter((t) => last === undefined || t > last);
      if (n === undefined || after.length <= n) return { items: after };
      const items = after.slice(0, n);
      return { items, next: items.at(-1) };
    } catch (err) {
      if ((err as { status?: number }).status === 404) throw err;
      logger.warn({ upstream: upstream.prefix, repository, err: (err as Error).message }, 'upstream unavailable: listing the cached tags');
      return inner.list(repository, last, n);
    }
  }
  return Object.assign(Object.create(inner) as TagService, { list });
}
