// Keeps each cache within its limits: `idleFor` evicts images not pulled for that long,
// `maxBytes` evicts the least recently pulled images until the cache fits (the most
// recently pulled one always stays). Only the cache's own repositories lose records;
// a blob that a local repository also links stays, and collection frees the files.
// Pulls are recorded in memory and written once a second, off the request path.

import type { CachedImage, PullCacheService } from '../registry/pullcache.js';
import type { Logger } from '../server/logger.js';
import { proxyMetrics } from './metrics.js';
import type { Upstream } from './upstream.js';

const FLUSH_MS = 1000;
/** How often idle images are looked for; a cache that grows is checked when it does. */
const IDLE_CHECK_MS = 60_000;

export class CacheKeeper {
  private pulls = new Map<string, [string, string, number]>();
  private readonly due = new Set<Upstream>();
  private running: Promise<void> | undefined;
  private readonly timers: NodeJS.Timeout[];

  constructor(
    private readonly store: PullCacheService,
    private readonly upstreams: Upstream[],
    private readonly logger: Logger,
  ) {
    this.timers = [
      setInterval(() => void this.flush(), FLUSH_MS),
      setInterval(() => {
        for (const u of this.upstreams) if (u.config.idleFor !== undefined) this.schedule(u);
      }, IDLE_CHECK_MS),
    ];
    for (const t of this.timers) t.unref();
  }

  pulled(repository: string, digest: string): void {
    this.pulls.set(`${repository}@${digest}`, [repository, digest, Date.now()]);
  }

  /** Checks `upstream`'s cache soon (after the request that grew it). */
  schedule(upstream: Upstream): void {
    if (upstream.config.maxBytes === undefined && upstream.config.idleFor === undefined) return;
    this.due.add(upstream);
    this.running ??= new Promise<void>((resolve) => setImmediate(resolve))
      .then(() => this.run())
      .finally(() => {
        this.running = undefined;
        if (this.due.size > 0) this.schedule([...this.due][0]!);
      });
  }

  /** Resolves once scheduled checks are done (tests, shutdown). */
  async settled(): Promise<void> {
    while (this.running) await this.running;
  }

  close(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    return this.flush();
  }

  /** Never rejects: a failure is logged (those pulls count as older). */
  private async flush(): Promise<void> {
    if (this.pulls.size === 0) return;
    const batch = this.pulls;
    this.pulls = new Map();
    try {
      await this.store.recordPulls([...batch.values()]);
    } catch (err) {
      this.logger.error({ err }, 'pull-through cache: recording pulls failed');
    }
  }

  private async run(): Promise<void> {
    await this.flush();
    for (const upstream of [...this.due]) {
      this.due.delete(upstream);
      try {
        await this.evict(upstream);
      } catch (err) {
        // A background task never crashes the server: the next fill or check tries again.
        this.logger.error({ err, upstream: upstream.prefix }, 'pull-through cache: eviction failed');
      }
    }
  }

  private async evict(upstream: Upstream): Promise<void> {
    const { prefix, config } = upstream;
    let images = await this.store.images(prefix);
    if (config.idleFor !== undefined) {
      const cutoff = Date.now() - config.idleFor;
      for (const image of images.filter((i) => i.pulledAt < cutoff)) await this.drop(upstream, image, 'idleFor');
      images = images.filter((i) => i.pulledAt >= cutoff);
    }
    if (config.maxBytes === undefined) return;
    while (images.length > 1 && (await this.store.size(prefix)) > config.maxBytes) await this.drop(upstream, images.shift()!, 'maxBytes');
  }

  private async drop(upstream: Upstream, image: CachedImage, reason: string): Promise<void> {
    await this.store.evict(image.repository, image.digest);
    proxyMetrics.evicted.inc({ upstream: upstream.prefix, reason });
    this.logger.info({ upstream: upstream.prefix, repository: image.repository, digest: image.digest, lastPulled: new Date(image.pulledAt).toISOString(), reason }, 'pull-through cache: evicted an image');
  }
}
