// Assembles the registry's services on their storage: the one object the server needs.

import { openDatabase, type Db } from '../../storage/db.js';
import { FsBlobStore } from '../../storage/blobstore.js';
import { GcStore } from '../../storage/gc.js';
import { MetadataStore } from '../../storage/metadata.js';
import { BlobService } from './blobs.js';
import { ManifestService } from './manifests.js';
import { TouchRecorder } from './touches.js';

export interface Registry {
  dataDir: string;
  db: Db;
  store: FsBlobStore;
  blobs: BlobService;
  manifests: ManifestService;
  close(): void;
}

export async function openRegistry(dataDir: string, options: { touchIntervalMs?: number } = {}): Promise<Registry> {
  const db = openDatabase(dataDir);
  const store = new FsBlobStore(dataDir);
  await store.init();
  const meta = new MetadataStore(db);
  const touches = new TouchRecorder(new GcStore(db), options.touchIntervalMs);
  return {
    dataDir,
    db,
    store,
    blobs: new BlobService(meta, store, touches),
    manifests: new ManifestService(meta, store),
    close: () => {
      touches.close();
      db.close();
    },
  };
}
