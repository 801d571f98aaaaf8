// What the storage holds and whether it can take more: the counts behind the metrics,
// and the checks behind /readyz (database answers, data directory writable, free space).

import { randomBytes } from 'node:crypto';
import { open, statfs, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Db } from './db.js';

export interface StorageStats {
  repositories: number;
  blobs: number;
  /** Sum of the sizes of all blobs (layers, configs and manifests), each counted once. */
  bytes: number;
  /** Upload sessions started and not finished or cancelled. */
  uploadSessions: number;
}

/** Reads the counts; prepared once per database. */
export function storageStats(db: Db): () => StorageStats {
  const blobs = db.prepare('SELECT count(*) AS n, coalesce(sum(size), 0) AS bytes FROM blobs');
  const repositories = db.prepare('SELECT count(*) AS n FROM repositories');
  const uploads = db.prepare('SELECT count(*) AS n FROM uploads');
  return () => {
    const b = blobs.get() as { n: number; bytes: number };
    return {
      repositories: (repositories.get() as { n: number }).n,
      blobs: b.n,
      bytes: b.bytes,
      uploadSessions: (uploads.get() as { n: number }).n,
    };
  };
}

/** Throws unless the database answers a query. */
export function pingDatabase(db: Db): void {
  db.prepare('SELECT 1').get();
}

/**
 * Proves the data directory takes writes: creates a file, writes, fsyncs, deletes it.
 * Permission bits do not stop root, so only a real write tells a read-only mount or a
 * full disk apart from a healthy one. The name is random: replicas may share the directory.
 */
export async function probeWritable(dataDir: string): Promise<void> {
  const path = join(dataDir, `.readyz-${process.pid}-${randomBytes(4).toString('hex')}`);
  const file = await open(path, 'wx');
  try {
    await file.write('ok\n');
    await file.sync();
  } finally {
    await file.close();
    await unlink(path).catch(() => undefined);
  }
}

/** Bytes free for this process on the data directory's file system. */
export async function freeBytes(dataDir: string): Promise<number> {
  const s = await statfs(dataDir);
  return s.bavail * s.bsize;
}
