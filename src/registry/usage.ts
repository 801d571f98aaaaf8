// Storage usage: per repository, its total and the part no other repository shares.

import { InspectStore, type RepositoryUsage } from '../../storage/inspect.js';
import type { Db } from '../../storage/db.js';

export interface UsageReport {
  /** Bytes of all blobs and manifests stored, each counted once. */
  storedBytes: number;
  storedBlobs: number;
  repositories: RepositoryUsage[];
}

export function storageUsage(db: Db): UsageReport {
  const inspect = new InspectStore(db);
  const stored = inspect.stored();
  return { storedBytes: stored.bytes, storedBlobs: stored.blobs, repositories: inspect.usage() };
}
