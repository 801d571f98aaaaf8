// Opens the storage a data directory holds, behind the ports (storage/ports.ts): the
// filesystem blob store and the SQLite metadata store. The scale-out drivers (S3,
// PostgreSQL) are chosen here too, from the registry's `storage` configuration.

import { FsBlobStore } from './fs/blobstore.js';
import type { BlobStore, MetadataStore } from './ports.js';
import { SqliteMetadataStore } from './sqlite/metadata.js';

export interface OpenedStorage {
  blobs: BlobStore;
  meta: MetadataStore;
}

/** `readOnly`: open the database read-only (a read-only mount): no migrations, no writes. */
export async function openStorage(dataDir: string, options: { readOnly?: boolean } = {}): Promise<OpenedStorage> {
  const meta = SqliteMetadataStore.open(dataDir, options);
  const blobs = new FsBlobStore(dataDir);
  if (!options.readOnly) await blobs.init();
  return { blobs, meta };
}
