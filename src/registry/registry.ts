// Assembles the registry's services on their storage: the one object the server, the
// CLI's maintenance commands and auth/ need. Nothing above src/registry sees storage/.

import { openStorage, type StorageConfig } from '../../storage/open.js';

export type { StorageConfig };
import { BlobService } from './blobs.js';
import { BrowseService } from './browse.js';
import { EventOutbox } from './events.js';
import { GcService, removeOrphanUploads } from './gc.js';
import { HealthService } from './health.js';
import { CatalogService, ManifestService, ReferrerService, TagService } from './manifests.js';
import { PullCacheService } from './pullcache.js';
import { RetentionService } from './retention.js';
import { ScrubService } from './scrub.js';
import { TOUCH_INTERVAL_MS, TouchRecorder } from './touches.js';
import { UsageService } from './usage.js';
import { UserService } from './users.js';

export interface Registry {
  dataDir: string;
  /** Opened read-only (`--read-only`): every write is refused by the store itself. */
  readOnly: boolean;
  blobs: BlobService;
  manifests: ManifestService;
  /** Reads for browsing (the web UI). */
  browse: BrowseService;
  tags: TagService;
  catalog: CatalogService;
  referrers: ReferrerService;
  gc: GcService;
  retention: RetentionService;
  scrub: ScrubService;
  usage: UsageService;
  users: UserService;
  events: EventOutbox;
  health: HealthService;
  /** Records of the pull-through cache (src/proxy). */
  pullCache: PullCacheService;
  close(): Promise<void>;
}

export interface RegistryOptions {
  /** How often blob touches are written (ms); tests shorten it. */
  touchIntervalMs?: number;
  /** Open the storage read-only: no migrations, no touches, no writes. */
  readOnly?: boolean;
  /**
   * Remove upload bytes that no session owns (left by a crash) now. Only where no other
   * process may be writing a session-less upload at this moment: a server's start-up,
   * before it (or its workers) serve.
   */
  sweepOrphanUploads?: boolean;
  /** Told of background failures (touch writes) that are retried, never thrown. */
  onBackgroundError?: (err: unknown) => void;
  /** PostgreSQL and/or S3 instead of the data directory (storage/open.ts). */
  storage?: StorageConfig;
}

export async function openRegistry(dataDir: string, options: RegistryOptions = {}): Promise<Registry> {
  const readOnly = options.readOnly ?? false;
  const { blobs: store, meta } = await openStorage(dataDir, { readOnly, storage: options.storage });
  if (options.sweepOrphanUploads && !readOnly) await removeOrphanUploads(meta, store, Date.now());
  const touches = readOnly ? undefined : new TouchRecorder(meta, options.touchIntervalMs ?? TOUCH_INTERVAL_MS, options.onBackgroundError ?? (() => undefined));
  const manifests = new ManifestService(meta, store);
  return {
    dataDir,
    readOnly,
    blobs: new BlobService(meta, store, touches),
    manifests,
    browse: new BrowseService(meta, store, manifests),
    tags: new TagService(meta),
    catalog: new CatalogService(meta),
    referrers: new ReferrerService(meta),
    gc: new GcService(meta, store),
    retention: new RetentionService(meta),
    scrub: new ScrubService(meta, store),
    usage: new UsageService(meta),
    users: new UserService(meta),
    events: new EventOutbox(meta),
    health: new HealthService(meta, store),
    pullCache: new PullCacheService(meta),
    async close() {
      await touches?.close();
      await meta.close();
    },
  };
}
