// Online garbage collection. It runs while the registry serves (in the server on a
// schedule, or as `berth gc` in another process on the same data directory) and is
// safe against pushes in flight:
// - anything uploaded, mounted, referenced or touched (HEAD/GET) within the grace
//   period is kept, and touches during the run are seen (see touches.ts);
// - every deletion re-checks its conditions in its own write transaction, and blob
//   files are removed inside the transaction that deletes their rows, which
//   serializes with the transaction that places a new upload (FsBlobStore.placeSync);
// - a manifest PUT checks its references in its own transaction, so it either finds
//   every blob or fails with MANIFEST_BLOB_UNKNOWN, never half-succeeds.

import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import { stat } from 'node:fs/promises';
import type { FsBlobStore } from '../../storage/blobstore.js';
import { GcStore } from '../../storage/gc.js';
import type { Db } from '../../storage/db.js';
import { parseDigest } from './names.js';
import { TOUCH_INTERVAL_MS } from './touches.js';

export interface GcOptions {
  /** Keep what was uploaded or touched this recently (ms). Default one hour. */
  graceMs?: number;
  /** Also delete manifests that no tag, index or live subject holds. */
  deleteUntagged?: boolean;
  /** Report what would go, change nothing. */
  dryRun?: boolean;
  /** Upload sessions idle longer than this are removed (ms). Default 24 hours. */
  uploadTtlMs?: number;
  /** Wait after announcing the run, so every server's pending touches are written (ms). */
  settleMs?: number;
}

export interface GcReport {
  dryRun: boolean;
  manifestsDeleted: { repository: string; digest: string }[];
  linksRemoved: number;
  blobsDeleted: number;
  bytesFreed: number;
  uploadsExpired: number;
  durationMs: number;
}

export const DEFAULT_GRACE_MS = 3_600_000;
export const DEFAULT_UPLOAD_TTL_MS = 24 * 3_600_000;
/** A run marked as started this long ago is taken to have died. */
const STALE_RUN_MS = 6 * 3_600_000;
const BATCH = 100;

export class GcAlreadyRunningError extends Error {}

/** Thrown inside the dry run's transaction to roll it back. */
class DryRunRollback extends Error {}

export async function collectGarbage(db: Db, store: FsBlobStore, options: GcOptions = {}): Promise<GcReport> {
  const gc = new GcStore(db);
  const started = Date.now();
  const runner = `${hostname()}:${process.pid}:${randomUUID()}`;
  if (!gc.begin(runner, started, started - STALE_RUN_MS)) {
    throw new GcAlreadyRunningError('a garbage collection is already running on this data directory');
  }
  const report: GcReport = {
    dryRun: options.dryRun ?? false,
    manifestsDeleted: [],
    linksRemoved: 0,
    blobsDeleted: 0,
    bytesFreed: 0,
    uploadsExpired: 0,
    durationMs: 0,
  };
  try {
    await new Promise((resolve) => setTimeout(resolve, options.settleMs ?? 2.5 * TOUCH_INTERVAL_MS));
    const cutoff = started - (options.graceMs ?? DEFAULT_GRACE_MS);
    if (report.dryRun) {
      try {
        db.transaction(() => {
          sweep(gc, store, cutoff, options.deleteUntagged ?? false, report, false);
          throw new DryRunRollback();
        })();
      } catch (err) {
        if (!(err instanceof DryRunRollback)) throw err;
      }
    } else {
      sweep(gc, store, cutoff, options.deleteUntagged ?? false, report, true);
      report.uploadsExpired = await expireUploads(gc, store, started - (options.uploadTtlMs ?? DEFAULT_UPLOAD_TTL_MS));
    }
  } finally {
    gc.end(runner, report.bytesFreed);
  }
  report.durationMs = Date.now() - started;
  return report;
}

/**
 * The deletions, in dependency order: unused manifests (repeatedly, since deleting an
 * index or a subject frees what it held), then repository links no manifest uses, then
 * blobs nothing links or references, files included. In a dry run the caller wraps all
 * of it in one transaction that it rolls back, and no file is touched.
 */
function sweep(gc: GcStore, store: FsBlobStore, cutoff: number, deleteUntagged: boolean, report: GcReport, removeFiles: boolean): void {
  const inTx = <T>(fn: () => T): T => (removeFiles ? gc.db.transaction(fn).immediate() : fn());
  if (deleteUntagged) {
    for (let round = gc.unusedManifests(cutoff); round.length > 0; round = gc.unusedManifests(cutoff)) {
      let deleted = 0;
      for (const m of round) {
        if (inTx(() => gc.deleteUnusedManifest(m.repo_id, m.digest, cutoff))) {
          report.manifestsDeleted.push({ repository: m.repository, digest: m.digest });
          deleted++;
        }
      }
      if (deleted === 0) break;
    }
  }
  const links = gc.unusedLinks(cutoff);
  for (let i = 0; i < links.length; i += BATCH) {
    inTx(() => {
      for (const link of links.slice(i, i + BATCH)) if (gc.deleteUnusedLink(link.repo_id, link.digest, cutoff)) report.linksRemoved++;
    });
  }
  const blobs = gc.unusedBlobs(cutoff);
  for (let i = 0; i < blobs.length; i += BATCH) {
    inTx(() => {
      for (const blob of blobs.slice(i, i + BATCH)) {
        if (!gc.deleteUnusedBlob(blob.digest, cutoff)) continue;
        if (removeFiles) store.removeBlobSync(parseDigest(blob.digest));
        report.blobsDeleted++;
        report.bytesFreed += blob.size;
      }
    });
  }
}

/**
 * Removes upload sessions idle since before `before`, and files in uploads/ that no
 * session owns (a monolithic upload or manifest write whose process died) as old.
 */
async function expireUploads(gc: GcStore, store: FsBlobStore, before: number): Promise<number> {
  let expired = 0;
  for (const uuid of gc.staleUploads(before)) {
    if (gc.deleteStaleUpload(uuid, before)) {
      await store.removeUpload(uuid);
      expired++;
    }
  }
  for (const name of await store.listUploadFiles()) {
    if (gc.uploadExists(name)) continue;
    const info = await stat(store.uploadPath(name)).catch(() => undefined);
    if (info && info.mtimeMs < before) {
      await store.removeUpload(name);
      expired++;
    }
  }
  return expired;
}
