// Assembles the registry's services on their storage: the one object the server needs.

import { openDatabase, type Db } from '../../storage/db.js';
import { FsBlobStore } from '../../storage/blobstore.js';
import { MetadataStore } from '../../storage/metadata.js';
import { BlobService } from './blobs.js';
import { ManifestService } from './manifests.js';

export interface Registry {
  dataDir: string;
  db: Db;
  blobs: BlobService;
  manifests: ManifestService;
  close(): void;
}

export async function openRegistry(dataDir: string): Promise<Registry> {
  const db = openDatabase(dataDir);
  const store = new FsBlobStore(dataDir);
  await store.init();
  const meta = new MetadataStore(db);
  return {
    dataDir,
    db,
    blobs: new BlobService(meta, store),
    manifests: new ManifestService(meta, store),
    close: () => db.close(),
  };
}
