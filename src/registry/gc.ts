// Online garbage collection. It runs while the registry serves (in a server on a
// schedule, or as `berth gc` in another process on the same data directory) and is
// safe against pushes in flight:
// - anything uploaded, mounted, referenced or touched (HEAD/GET) within the grace
//   period is kept, and touches during the run are seen (see touches.ts);
// - one collection at a time, by the 'gc' lease, renewed while it runs: a killed
//   collector's lease expires (at once when its process is known to be gone);
// - every deletion re-checks its conditions in its own short transaction, and objects
//   are deleted after the transaction that deleted their rows, under GC marks that make
//   a push of the same digest wait and publish again (storage/ports.ts, the invariant);
// - a dry run works on a private copy of the metadata and never takes the write lock.

import type { BlobStore, MetadataStore } from '../../storage/ports.js';
import { holderIsDead, newHolder } from './leases.js';
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
  /** When nothing was freed: the blobs (and bytes) the grace period kept, that would go without it. */
  blobsInGrace: number;
  bytesInGrace: number;
  /** Objects the store held without any row (a crash between publish and insert), deleted. */
  orphansDeleted: number;
  durationMs: number;
}

export const DEFAULT_GRACE_MS = 3_600_000;
export const DEFAULT_UPLOAD_TTL_MS = 24 * 3_600_000;
/** Upload files without a session (a monolithic upload or manifest write whose process died) older than this go. */
const ORPHAN_UPLOAD_MS = 3_600_000;
/** The collector's lease: renewed every third of it while the run lasts. */
const GC_LEASE_MS = 15_000;
/** Rows per transaction: each batch holds the write lock for a few milliseconds. */
const BATCH = 100;

export class GcAlreadyRunningError extends Error {}

export class GcService {
  constructor(
    private readonly meta: MetadataStore,
    private readonly store: BlobStore,
  ) {}

  async collect(options: GcOptions = {}): Promise<GcReport> {
    const started = Date.now();
    const dryRun = options.dryRun ?? false;
    const runner = newHolder();
    if (dryRun && !this.meta.snapshot) throw new Error('this metadata store cannot make the private copy a dry run needs');
    const meta = dryRun ? await this.meta.snapshot!() : this.meta;
    const report: GcReport = { dryRun, manifestsDeleted: [], linksRemoved: 0, blobsDeleted: 0, bytesFreed: 0, uploadsExpired: 0, blobsInGrace: 0, bytesInGrace: 0, orphansDeleted: 0, durationMs: 0 };
    try {
      if (!(await takeLease(meta, runner))) throw new GcAlreadyRunningError('a garbage collection is already running on this data directory');
      const renew = setInterval(() => {
        meta.acquireLease('gc', runner, GC_LEASE_MS).catch(() => undefined);
      }, GC_LEASE_MS / 3);
      renew.unref();
      try {
        await new Promise((resolve) => setTimeout(resolve, options.settleMs ?? 2.5 * TOUCH_INTERVAL_MS));
        const cutoff = started - (options.graceMs ?? DEFAULT_GRACE_MS);
        await this.sweep(meta, runner, cutoff, options.deleteUntagged ?? false, report, !dryRun);
        if (report.blobsDeleted === 0 && cutoff < started) await this.countInGrace(dryRun ? meta : undefined, runner, started, options, report);
        if (!dryRun) {
          const ttl = options.uploadTtlMs ?? DEFAULT_UPLOAD_TTL_MS;
          report.uploadsExpired = await expireUploads(meta, this.store, started - ttl, started - Math.min(ttl, ORPHAN_UPLOAD_MS));
        }
      } finally {
        clearInterval(renew);
        await meta.releaseLease('gc', runner);
      }
      if (!dryRun) await meta.recordGcRun({ at: Date.now(), freedBytes: report.bytesFreed });
    } finally {
      if (dryRun) await meta.close();
    }
    report.durationMs = Date.now() - started;
    return report;
  }

  /**
   * A run that freed nothing says whether the grace period is why: the same sweep without
   * it, on a private copy of the metadata (the dry run's own, or a new snapshot), counts
   * what it kept.
   */
  private async countInGrace(dryRunCopy: MetadataStore | undefined, runner: string, now: number, options: GcOptions, report: GcReport): Promise<void> {
    const copy = dryRunCopy ?? (await this.meta.snapshot?.());
    if (!copy) return;
    try {
      const without: GcReport = { ...report, manifestsDeleted: [], linksRemoved: 0, blobsDeleted: 0, bytesFreed: 0 };
      await this.sweep(copy, runner, now, options.deleteUntagged ?? false, without, false);
      report.blobsInGrace = without.blobsDeleted;
      report.bytesInGrace = without.bytesFreed;
    } finally {
      if (!dryRunCopy) await copy.close();
    }
  }

  /**
   * The deletions, in dependency order: unused manifests (repeatedly, since deleting an
   * index or a subject frees what it held), then repository links no manifest uses, then
   * blobs nothing links or references, with their objects.
   */
  private async sweep(meta: MetadataStore, runner: string, cutoff: number, deleteUntagged: boolean, report: GcReport, deleteObjects: boolean): Promise<void> {
    if (deleteUntagged) {
      for (;;) {
        const candidates = await meta.unusedManifests(cutoff, BATCH);
        if (candidates.length === 0) break;
        const deleted = await meta.deleteUnusedManifests(candidates, cutoff);
        report.manifestsDeleted.push(...deleted);
        if (deleted.length === 0) break;
      }
    }
    for (;;) {
      const removed = await meta.deleteUnusedLinks(cutoff, BATCH);
      report.linksRemoved += removed;
      if (removed < BATCH) break;
    }
    for (let after = ''; ; ) {
      const candidates = await meta.unusedBlobs(cutoff, after, BATCH);
      if (candidates.length === 0) break;
      after = candidates[candidates.length - 1]!.digest;
      const deleted = await meta.deleteUnusedBlobs(candidates.map((b) => b.digest), cutoff, runner);
      if (deleted.length === 0) continue;
      if (deleteObjects) {
        // Only while the lease is ours: otherwise our marks no longer hold pushes back.
        if (!(await meta.acquireLease('gc', runner, GC_LEASE_MS))) throw new Error('garbage collection lost its lease: stopped before deleting objects');
        await Promise.all(deleted.map((b) => this.store.delete(b.digest)));
        await meta.clearGcMarks(deleted.map((b) => b.digest));
      }
      report.blobsDeleted += deleted.length;
      for (const b of deleted) report.bytesFreed += b.size;
    }
    if (deleteObjects) report.orphansDeleted = await this.sweepOrphanObjects(meta, runner);
  }

  /** Deletes objects without a row (a crash between publish and insert, a refused manifest), under GC marks. */
  private async sweepOrphanObjects(meta: MetadataStore, runner: string): Promise<number> {
    if (!meta.markOrphanObjects) return 0;
    let deleted = 0;
    let batch: string[] = [];
    const flush = async () => {
      const orphans = await meta.markOrphanObjects!(batch, runner);
      batch = [];
      if (orphans.length === 0) return;
      if (!(await meta.acquireLease('gc', runner, GC_LEASE_MS))) throw new Error('garbage collection lost its lease: stopped before deleting objects');
      await Promise.all(orphans.map((digest) => this.store.delete(digest)));
      await meta.clearGcMarks(orphans);
      deleted += orphans.length;
    };
    for await (const digest of this.store.list()) {
      batch.push(digest);
      if (batch.length >= BATCH) await flush();
    }
    if (batch.length) await flush();
    return deleted;
  }
}

/** Takes the 'gc' lease, from a holder on this machine whose process is gone if need be. */
async function takeLease(meta: MetadataStore, runner: string): Promise<boolean> {
  if (await meta.acquireLease('gc', runner, GC_LEASE_MS)) return true;
  const current = await meta.lease('gc');
  if (!current || !holderIsDead(current.holder)) return false;
  await meta.releaseLease('gc', current.holder);
  return meta.acquireLease('gc', runner, GC_LEASE_MS);
}

/**
 * Removes upload sessions idle since before `before` with their bytes, and upload
 * bytes that no session owns written before `orphanBefore`.
 */
async function expireUploads(meta: MetadataStore, store: BlobStore, before: number, orphanBefore: number): Promise<number> {
  let expired = 0;
  for (const id of await meta.expireUploads(before)) {
    await store.removeUpload(id);
    expired++;
  }
  return expired + (await removeOrphanUploads(meta, store, orphanBefore));
}

/** Removes upload bytes without a session, last written before `before`; resolves to how many. */
export async function removeOrphanUploads(meta: MetadataStore, store: BlobStore, before: number): Promise<number> {
  const old: string[] = [];
  for await (const upload of store.listUploads()) if (upload.modifiedAt < before) old.push(upload.id);
  let removed = 0;
  for (let i = 0; i < old.length; i += BATCH) {
    const batch = old.slice(i, i + BATCH);
    const live = await meta.existingUploads(batch);
    for (const id of batch) {
      if (live.has(id)) continue;
      await store.removeUpload(id);
      removed++;
    }
  }
  return removed;
}
