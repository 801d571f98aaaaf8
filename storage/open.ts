// Opens the registry's storage behind the ports (storage/ports.ts): by default the
// filesystem blob store and the SQLite metadata store of a data directory; with the
// scale-out configuration, PostgreSQL for metadata and an S3-compatible store for
// blobs, shared by replicas. Those drivers are loaded only when configured (the AWS SDK
// alone takes a noticeable part of a second to import).

import { FsBlobStore } from './fs/blobstore.js';
import type { BlobStore, MetadataStore } from './ports.js';
import type { S3Options } from './s3/blobs.js';
import { SqliteMetadataStore } from './sqlite/metadata.js';

/** Which drivers to use (config keys `database` and `storage.s3`); each absent one is the local default. */
export interface StorageConfig {
  database?: { url: string };
  s3?: S3Options;
}

export interface OpenedStorage {
  blobs: BlobStore;
  meta: MetadataStore;
}

/** `readOnly`: open the database read-only (a read-only mount): no migrations, no writes. */
export async function openStorage(dataDir: string, options: { readOnly?: boolean; storage?: StorageConfig } = {}): Promise<OpenedStorage> {
  const { database, s3 } = options.storage ?? {};
  const meta: MetadataStore = database
    ? await (await import('./postgres/metadata.js')).PostgresMetadataStore.open({ url: database.url })
    : SqliteMetadataStore.open(dataDir, options);
  try {
    const blobs: BlobStore = s3 ? new (await import('./s3/blobs.js')).S3BlobStore(s3) : new FsBlobStore(dataDir);
    if (!options.readOnly || s3) await blobs.init();
    return { blobs, meta };
  } catch (err) {
    await meta.close();
    throw err;
  }
}
