// What the pull-through cache (src/proxy) keeps about its images: when each was last
// pulled, how much a cache holds, and eviction of an image's records.

import type { CachedImage, MetadataStore } from '../../storage/ports.js';

export type { CachedImage };

export class PullCacheService {
  constructor(private readonly meta: MetadataStore) {}

  private need<K extends 'recordPulls' | 'cacheSize' | 'cachedImages' | 'evictImage'>(name: K): NonNullable<MetadataStore[K]> {
    const method = this.meta[name];
    if (!method) throw new Error(`this metadata store does not keep pull-through cache records (${name})`);
    return method.bind(this.meta) as NonNullable<MetadataStore[K]>;
  }

  /** Records pulls: [repository, digest, time]. */
  recordPulls(pulls: [string, string, number][]): Promise<void> {
    return this.need('recordPulls')(pulls);
  }

  size(prefix: string): Promise<number> {
    return this.need('cacheSize')(prefix);
  }

  /** The cache's images, least recently pulled first. */
  images(prefix: string): Promise<CachedImage[]> {
    return this.need('cachedImages')(prefix);
  }

  /**
   * Takes (or renews) the right to fetch blob `digest` from an upstream, so that the
   * processes and replicas on one store fetch it once. False while another holder has it.
   */
  claimFill(digest: string, holder: string, ttlMs: number): Promise<boolean> {
    return this.meta.acquireLease(`proxy-fill:${digest}`, holder, ttlMs);
  }

  releaseFill(digest: string, holder: string): Promise<void> {
    return this.meta.releaseLease(`proxy-fill:${digest}`, holder);
  }

  /** Evicts an image's records; its objects go at the next collection. */
  evict(repository: string, digest: string): Promise<void> {
    return this.need('evictImage')(repository, digest);
  }
}
