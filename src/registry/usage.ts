// Storage usage: per repository, its total and the part no other repository shares;
// and the counts behind the metrics.

import type { MetadataStore, RepositoryUsage, StorageCounts } from '../../storage/ports.js';

export interface UsageReport {
  /** Bytes of all blobs and manifests stored, each counted once. */
  storedBytes: number;
  storedBlobs: number;
  repositories: RepositoryUsage[];
}

export class UsageService {
  constructor(private readonly meta: MetadataStore) {}

  async report(): Promise<UsageReport> {
    const counts = await this.meta.counts();
    return { storedBytes: counts.bytes, storedBlobs: counts.blobs, repositories: await this.meta.usage() };
  }

  counts(): Promise<StorageCounts> {
    return this.meta.counts();
  }
}
