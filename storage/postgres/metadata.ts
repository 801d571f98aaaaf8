// The MetadataStore port on PostgreSQL, shared by every replica (migrations/postgres/).
//
// Writes are serialized across replicas by a transaction-scoped advisory lock taken
// first in every write transaction: the same guarantee SQLite's BEGIN IMMEDIATE gives the
// single-node store, on which the GC invariants of storage/ports.ts rest (a collector's
// re-checked DELETE and a push's INSERT of the same digest never interleave). Reads take
// no lock. Leases are single atomic statements and need none.
//
// Names, tags and digests sort bytewise (COLLATE "C"), as on SQLite and in the spec's
// `n`/`last` pagination, whatever the database's default collation.

import type pg from 'pg';
import {
  BlobMarkedError,
  type BrokenManifest,
  type CachedImage,
  type LeaseState,
  type ManifestRecord,
  type MetadataStore,
  type MissingReference,
  type NewManifest,
  type OutboxEvent,
  type QueuedEvent,
  type RepositoryUsage,
  type StorageCounts,
  type RepositorySummary,
  type TagCursor,
  type TagDetail,
  type TagRecord,
  type UnusedManifest,
  type UploadLease,
  type UploadSession,
  type User,
} from '../ports.js';
import { createPool, migrate, unavailable, type PoolOptions } from './db.js';
import { BROWSE_SQL } from './browse.js';

/** Key of the advisory lock every write transaction holds (any constant unique to Berth). */
const WRITE_LOCK = 0x62657274_77; // "bertw"

const MANIFEST_COLUMNS = `m.digest, m.media_type AS "mediaType", m.size, m.artifact_type AS "artifactType",
  m.subject_digest AS "subjectDigest", m.annotations`;

/** A manifest no tag, parent index or live subject holds, created before $cutoff. */
const UNUSED_MANIFEST = (cutoff: string) => `
  m.created_at < ${cutoff}
  AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repo_id = m.repo_id AND t.manifest_digest = m.digest)
  AND NOT EXISTS (SELECT 1 FROM manifest_references r WHERE r.repo_id = m.repo_id AND r.child_digest = m.digest AND r.kind = 'manifest')
  AND (m.subject_digest IS NULL OR NOT EXISTS (SELECT 1 FROM manifests s WHERE s.repo_id = m.repo_id AND s.digest = m.subject_digest))`;

/** A repository's link to a blob that none of its manifests references. */
const UNUSED_LINK = (cutoff: string) => `
  rb.created_at < ${cutoff}
  AND (SELECT touched_at FROM blobs b WHERE b.digest = rb.digest) < ${cutoff}
  AND NOT EXISTS (SELECT 1 FROM manifest_references r WHERE r.repo_id = rb.repo_id AND r.child_digest = rb.digest)`;

/** A blob no repository links, no manifest is, and no manifest references. */
const UNUSED_BLOB = (cutoff: string) => `
  b.touched_at < ${cutoff}
  AND NOT EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.digest = b.digest)
  AND NOT EXISTS (SELECT 1 FROM manifests m WHERE m.digest = b.digest)
  AND NOT EXISTS (SELECT 1 FROM manifest_references r WHERE r.child_digest = b.digest)`;

/** A manifest and, recursively, its referrers in the repository ($1 name, $2 digest). */
/** Repositories under `$1/` (a pull-through cache's prefix). */
const UNDER_PREFIX = `left(r.name, length($1) + 1) = $1 || '/'`;

const DELETE_MANIFEST_AND_REFERRERS = `
  WITH RECURSIVE repo AS (SELECT id FROM repositories WHERE name = $1),
       doomed(digest) AS (
         SELECT $2::text
         UNION SELECT m.digest FROM manifests m, doomed d, repo WHERE m.repo_id = repo.id AND m.subject_digest = d.digest)
  DELETE FROM manifests WHERE repo_id = (SELECT id FROM repo) AND digest IN (SELECT digest FROM doomed)`;

const USER_SELECT = `
  SELECT u.name, u.password_hash AS "passwordHash", u.admin, u.created_at AS "createdAt",
         u.password_changed_at AS "passwordChangedAt",
         COALESCE((SELECT array_agg(g.group_name ORDER BY g.group_name) FROM user_groups g WHERE g.user_name = u.name), '{}') AS groups
    FROM users u`;

type Client = pg.PoolClient;

export interface PostgresMetadataOptions extends PoolOptions {
  /** Skip the migrations (a read-only replica, or a tool that must not change the schema). */
  skipMigrations?: boolean;
}

export class PostgresMetadataStore implements MetadataStore {
  readonly readOnly = false;

  private constructor(private readonly pool: pg.Pool) {}

  /** Connects and applies pending migrations; rejects with StoreUnavailableError when the database is unreachable. */
  static async open(options: PostgresMetadataOptions): Promise<PostgresMetadataStore> {
    const pool = createPool(options);
    try {
      if (!options.skipMigrations) await migrate(pool);
    } catch (err) {
      await pool.end().catch(() => undefined);
      throw err;
    }
    return new PostgresMetadataStore(pool);
  }

  async close(): Promise<void> {
    await this.pool.end();
  }

  async ping(): Promise<void> {
    await this.rows('SELECT 1');
  }

  // --- plumbing ------------------------------------------------------------------------

  private async rows<T extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<T[]> {
    try {
      return (await this.pool.query<T>(sql, params)).rows;
    } catch (err) {
      return unavailable(err);
    }
  }

  private async run(sql: string, params: unknown[] = []): Promise<number> {
    try {
      return (await this.pool.query(sql, params)).rowCount ?? 0;
    } catch (err) {
      return unavailable(err);
    }
  }

  /** Runs `fn` in a transaction holding the write lock; rolls back on any error. */
  private async write<T>(fn: (c: Client) => Promise<T>): Promise<T> {
    let client: Client;
    try {
      client = await this.pool.connect();
    } catch (err) {
      return unavailable(err);
    }
    let broken = false;
    try {
      await client.query('BEGIN');
      await client.query('SELECT pg_advisory_xact_lock($1)', [WRITE_LOCK]);
      const result = await fn(client);
      await client.query('COMMIT');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => (broken = true));
      return unavailable(err);
    } finally {
      client.release(broken);
    }
  }

  private async repoId(c: Client, name: string): Promise<number | undefined> {
    return (await c.query<{ id: number }>('SELECT id FROM repositories WHERE name = $1', [name])).rows[0]?.id;
  }

  /** The repository's id, creating it (the write lock makes select-then-insert safe). */
  private async ensureRepo(c: Client, name: string, now: number): Promise<number> {
    const id = await this.repoId(c, name);
    if (id !== undefined) return id;
    return (await c.query<{ id: number }>('INSERT INTO repositories (name, created_at) VALUES ($1, $2) RETURNING id', [name, now])).rows[0]!.id;
  }

  private async enqueue(c: Client, events: OutboxEvent[] | undefined, now: number): Promise<void> {
    if (!events?.length) return;
    await c.query(
      `INSERT INTO event_queue (endpoint, event_id, payload, next_attempt_at, created_at)
       SELECT e, i, p, $4, $4 FROM unnest($1::text[], $2::text[], $3::text[]) AS x(e, i, p)`,
      [events.map((e) => e.endpoint), events.map((e) => e.eventId), events.map((e) => e.payload), now],
    );
  }

  /**
   * Refuses a row for a digest a live collection is deleting (BlobMarkedError); a mark
   * whose runner lost the 'gc' lease is dead and is dropped.
   */
  private async checkMark(c: Client, digest: string, now: number): Promise<void> {
    const { rows } = await c.query<{ live: boolean }>(
      `SELECT EXISTS (SELECT 1 FROM leases l WHERE l.name = 'gc' AND l.holder = g.runner AND l.until > $2) AS live
         FROM gc_marks g WHERE g.digest = $1`,
      [digest, now],
    );
    if (!rows[0]) return;
    if (rows[0].live) throw new BlobMarkedError(digest);
    await c.query('DELETE FROM gc_marks WHERE digest = $1', [digest]);
  }

  private async insertBlob(c: Client, digest: string, size: number, now: number): Promise<void> {
    await c.query(
      `INSERT INTO blobs (digest, size, created_at, touched_at) VALUES ($1, $2, $3, $3)
       ON CONFLICT (digest) DO UPDATE SET touched_at = GREATEST(blobs.touched_at, EXCLUDED.touched_at)`,
      [digest, size, now],
    );
  }

  // --- repositories and blob links ---------------------------------------------------

  async blobInRepository(repository: string, digest: string): Promise<number | undefined> {
    const rows = await this.rows<{ size: number }>(
      `SELECT b.size FROM repositories r
         JOIN repository_blobs rb ON rb.repo_id = r.id
         JOIN blobs b ON b.digest = rb.digest
        WHERE r.name = $1 AND rb.digest = $2`,
      [repository, digest],
    );
    return rows[0]?.size;
  }

  async blobSize(digest: string): Promise<number | undefined> {
    return (await this.rows<{ size: number }>('SELECT size FROM blobs WHERE digest = $1', [digest]))[0]?.size;
  }

  async aRepositoryWithBlob(digest: string): Promise<string | undefined> {
    const rows = await this.rows<{ name: string }>(
      'SELECT r.name FROM repository_blobs rb JOIN repositories r ON r.id = rb.repo_id WHERE rb.digest = $1 LIMIT 1',
      [digest],
    );
    return rows[0]?.name;
  }

  addBlob(blob: { repository: string; digest: string; size: number; uploadId?: string; events?: OutboxEvent[] }): Promise<void> {
    return this.write(async (c) => {
      const now = Date.now();
      await this.checkMark(c, blob.digest, now);
      const repoId = await this.ensureRepo(c, blob.repository, now);
      await this.insertBlob(c, blob.digest, blob.size, now);
      await c.query('INSERT INTO repository_blobs (repo_id, digest, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING', [repoId, blob.digest, now]);
      if (blob.uploadId) await c.query('DELETE FROM uploads WHERE uuid = $1', [blob.uploadId]);
      await this.enqueue(c, blob.events, now);
    });
  }

  mountBlob(repository: string, digest: string, events?: OutboxEvent[]): Promise<boolean> {
    return this.write(async (c) => {
      const now = Date.now();
      const touched = await c.query('UPDATE blobs SET touched_at = GREATEST(touched_at, $2) WHERE digest = $1', [digest, now]);
      if (!touched.rowCount) return false;
      const repoId = await this.ensureRepo(c, repository, now);
      await c.query('INSERT INTO repository_blobs (repo_id, digest, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING', [repoId, digest, now]);
      await this.enqueue(c, events, now);
      return true;
    });
  }

  unlinkBlob(repository: string, digest: string, events?: OutboxEvent[]): Promise<'unlinked' | 'unknown' | { heldBy: string[] }> {
    return this.write(async (c) => {
      const repoId = await this.repoId(c, repository);
      if (repoId === undefined) return 'unknown';
      const held = await c.query<{ manifest_digest: string }>(
        `SELECT DISTINCT manifest_digest FROM manifest_references
          WHERE repo_id = $1 AND child_digest = $2 AND kind <> 'manifest' ORDER BY manifest_digest`,
        [repoId, digest],
      );
      if (held.rows.length) return { heldBy: held.rows.map((r) => r.manifest_digest) };
      const gone = await c.query('DELETE FROM repository_blobs WHERE repo_id = $1 AND digest = $2', [repoId, digest]);
      if (!gone.rowCount) return 'unknown';
      await this.enqueue(c, events, Date.now());
      return 'unlinked';
    });
  }

  async touchBlobs(touches: ReadonlyMap<string, number>): Promise<void> {
    if (touches.size === 0) return;
    await this.write((c) =>
      c.query(
        `UPDATE blobs b SET touched_at = GREATEST(b.touched_at, t.at)
           FROM unnest($1::text[], $2::bigint[]) AS t(digest, at) WHERE b.digest = t.digest`,
        [[...touches.keys()], [...touches.values()]],
      ),
    );
  }

  // --- manifests and tags --------------------------------------------------------------

  putManifest(m: NewManifest, events?: OutboxEvent[]): Promise<MissingReference | undefined> {
    return this.write(async (c): Promise<MissingReference | undefined> => {
      const now = Date.now();
      await this.checkMark(c, m.digest, now);
      const repoId = await this.ensureRepo(c, m.repository, now);
      const blobDigests = m.blobs.map((b) => b.digest);
      if (blobDigests.length && !m.referencesFetchedLater) {
        const linked = new Set(
          (await c.query<{ digest: string }>('SELECT digest FROM repository_blobs WHERE repo_id = $1 AND digest = ANY($2)', [repoId, blobDigests])).rows.map((r) => r.digest),
        );
        const missing = blobDigests.find((d) => !linked.has(d));
        if (missing) return { digest: missing, kind: 'blob' };
      }
      if (m.children.length && !m.referencesFetchedLater) {
        const present = new Set(
          (await c.query<{ digest: string }>('SELECT digest FROM manifests WHERE repo_id = $1 AND digest = ANY($2)', [repoId, m.children])).rows.map((r) => r.digest),
        );
        const missing = m.children.find((d) => !present.has(d));
        if (missing) return { digest: missing, kind: 'manifest' };
      }
      await this.insertBlob(c, m.digest, m.size, now);
      await c.query(
        `INSERT INTO manifests (repo_id, digest, media_type, size, artifact_type, subject_digest, annotations, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (repo_id, digest) DO NOTHING`,
        [repoId, m.digest, m.mediaType, m.size, m.artifactType, m.subject, m.annotations, now],
      );
      const refs = [...m.blobs.map((b) => [b.digest, b.kind] as const), ...m.children.map((d) => [d, 'manifest'] as const)];
      if (refs.length) {
        await c.query(
          `INSERT INTO manifest_references (repo_id, manifest_digest, child_digest, kind)
           SELECT $1, $2, d, k FROM unnest($3::text[], $4::text[]) AS x(d, k) ON CONFLICT DO NOTHING`,
          [repoId, m.digest, refs.map((r) => r[0]), refs.map((r) => r[1])],
        );
      }
      if (blobDigests.length) await c.query('UPDATE blobs SET touched_at = GREATEST(touched_at, $2) WHERE digest = ANY($1)', [blobDigests, now]);
      if (m.tags.length) {
        await c.query(
          `INSERT INTO tags (repo_id, name, manifest_digest, updated_at) SELECT $1, t, $2, $4 FROM unnest($3::text[]) AS t
           ON CONFLICT (repo_id, name) DO UPDATE SET manifest_digest = EXCLUDED.manifest_digest, updated_at = EXCLUDED.updated_at`,
          [repoId, m.digest, m.tags, now],
        );
      }
      await this.enqueue(c, events, now);
      return undefined;
    });
  }

  async manifestByDigest(repository: string, digest: string): Promise<ManifestRecord | undefined> {
    const rows = await this.rows<ManifestRecord>(
      `SELECT ${MANIFEST_COLUMNS} FROM manifests m JOIN repositories r ON r.id = m.repo_id WHERE r.name = $1 AND m.digest = $2`,
      [repository, digest],
    );
    return rows[0];
  }

  async manifestByTag(repository: string, tag: string): Promise<ManifestRecord | undefined> {
    const rows = await this.rows<ManifestRecord>(
      `SELECT ${MANIFEST_COLUMNS} FROM repositories r
         JOIN tags t ON t.repo_id = r.id
         JOIN manifests m ON m.repo_id = r.id AND m.digest = t.manifest_digest
        WHERE r.name = $1 AND t.name = $2`,
      [repository, tag],
    );
    return rows[0];
  }

  deleteManifest(repository: string, digest: string, events?: OutboxEvent[]): Promise<boolean> {
    return this.write(async (c) => {
      const deleted = await c.query(DELETE_MANIFEST_AND_REFERRERS, [repository, digest]);
      if (!deleted.rowCount) return false;
      await this.enqueue(c, events, Date.now());
      return true;
    });
  }

  deleteTag(repository: string, tag: string, events?: OutboxEvent[]): Promise<boolean> {
    return this.write(async (c) => {
      const deleted = await c.query('DELETE FROM tags WHERE repo_id = (SELECT id FROM repositories WHERE name = $1) AND name = $2', [repository, tag]);
      if (!deleted.rowCount) return false;
      await this.enqueue(c, events, Date.now());
      return true;
    });
  }

  async listTags(repository: string, after: string, limit: number): Promise<string[] | undefined> {
    const repo = await this.rows<{ id: number }>('SELECT id FROM repositories WHERE name = $1', [repository]);
    if (!repo[0]) return undefined;
    const rows = await this.rows<{ name: string }>(
      'SELECT name FROM tags WHERE repo_id = $1 AND name COLLATE "C" > $2 ORDER BY name COLLATE "C" LIMIT $3',
      [repo[0].id, after, limit < 0 ? null : limit],
    );
    return rows.map((r) => r.name);
  }

  async catalog(after: string, limit: number): Promise<string[]> {
    const rows = await this.rows<{ name: string }>(
      `SELECT name FROM repositories r
        WHERE name COLLATE "C" > $1 AND EXISTS (SELECT 1 FROM manifests m WHERE m.repo_id = r.id)
        ORDER BY name COLLATE "C" LIMIT $2`,
      [after, limit < 0 ? null : limit],
    );
    return rows.map((r) => r.name);
  }

  referrers(repository: string, subject: string, after = '', limit = -1): Promise<ManifestRecord[]> {
    return this.rows<ManifestRecord>(
      `SELECT ${MANIFEST_COLUMNS} FROM manifests m JOIN repositories r ON r.id = m.repo_id
        WHERE r.name = $1 AND m.subject_digest = $2 AND m.digest COLLATE "C" > $3 ORDER BY m.digest COLLATE "C" LIMIT $4`,
      [repository, subject, after, limit < 0 ? null : limit],
    );
  }

  // --- upload sessions -------------------------------------------------------------

  async createUpload(id: string, repository: string): Promise<void> {
    await this.write(async (c) => {
      const now = Date.now();
      const repoId = await this.ensureRepo(c, repository, now);
      await c.query('INSERT INTO uploads (uuid, repo_id, "offset", created_at, updated_at) VALUES ($1, $2, 0, $3, $3)', [id, repoId, now]);
    });
  }

  async getUpload(id: string): Promise<UploadSession | undefined> {
    const rows = await this.rows<UploadSession>(
      `SELECT u.uuid AS id, r.name AS repository, u."offset", u.hash_state AS "hashState", u.created_at AS "createdAt", u.updated_at AS "updatedAt"
         FROM uploads u JOIN repositories r ON r.id = u.repo_id WHERE u.uuid = $1`,
      [id],
    );
    return rows[0];
  }

  async leaseUpload(id: string, lease: UploadLease, replacing?: string): Promise<UploadSession | { busyWith: string } | undefined> {
    const now = Date.now();
    const rows = await this.rows<UploadSession>(
      `UPDATE uploads u SET lease_holder = $2, lease_until = $3
         FROM repositories r
        WHERE u.uuid = $1 AND r.id = u.repo_id AND (u.lease_holder IS NULL OR u.lease_holder = $2 OR u.lease_holder = $5 OR u.lease_until < $4)
        RETURNING u.uuid AS id, r.name AS repository, u."offset", u.hash_state AS "hashState", u.created_at AS "createdAt", u.updated_at AS "updatedAt"`,
      [id, lease.holder, now + lease.ttlMs, now, replacing ?? null],
    );
    if (rows[0]) return rows[0];
    const holder = await this.rows<{ lease_holder: string }>('SELECT lease_holder FROM uploads WHERE uuid = $1', [id]);
    return holder[0] ? { busyWith: holder[0].lease_holder } : undefined;
  }

  async renewUploadLease(id: string, lease: UploadLease): Promise<boolean> {
    return (await this.run('UPDATE uploads SET lease_until = $3 WHERE uuid = $1 AND lease_holder = $2', [id, lease.holder, Date.now() + lease.ttlMs])) > 0;
  }

  async releaseUpload(id: string, holder: string, progress?: { offset: number; hashState: string | null }): Promise<void> {
    await this.run(
      `UPDATE uploads SET lease_holder = NULL, lease_until = 0, updated_at = $3,
              "offset" = COALESCE($4, "offset"), hash_state = CASE WHEN $4::bigint IS NULL THEN hash_state ELSE $5 END
        WHERE uuid = $1 AND lease_holder = $2`,
      [id, holder, Date.now(), progress?.offset ?? null, progress?.hashState ?? null],
    );
  }

  async deleteUpload(id: string): Promise<void> {
    await this.run('DELETE FROM uploads WHERE uuid = $1', [id]);
  }

  async expireUploads(before: number): Promise<string[]> {
    // A session being written right now (a live lease on a long body) is not stale.
    const rows = await this.rows<{ uuid: string }>('DELETE FROM uploads WHERE updated_at < $1 AND lease_until < $2 RETURNING uuid', [before, Date.now()]);
    return rows.map((r) => r.uuid);
  }

  async existingUploads(ids: string[]): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    return new Set((await this.rows<{ uuid: string }>('SELECT uuid FROM uploads WHERE uuid = ANY($1)', [ids])).map((r) => r.uuid));
  }

  // --- garbage collection -------------------------------------------------------------

  unusedManifests(cutoff: number, limit: number): Promise<UnusedManifest[]> {
    return this.rows<UnusedManifest>(
      `SELECT r.name AS repository, m.digest FROM manifests m JOIN repositories r ON r.id = m.repo_id
        WHERE ${UNUSED_MANIFEST('$1')} ORDER BY r.name COLLATE "C", m.digest COLLATE "C" LIMIT $2`,
      [cutoff, limit],
    );
  }

  deleteUnusedManifests(manifests: UnusedManifest[], cutoff: number, events?: OutboxEvent[]): Promise<UnusedManifest[]> {
    if (manifests.length === 0) return Promise.resolve([]);
    return this.write(async (c) => {
      const { rows } = await c.query<UnusedManifest>(
        `DELETE FROM manifests m USING repositories r, unnest($1::text[], $2::text[]) AS x(repository, digest)
          WHERE r.name = x.repository AND m.repo_id = r.id AND m.digest = x.digest AND ${UNUSED_MANIFEST('$3')}
          RETURNING r.name AS repository, m.digest`,
        [manifests.map((m) => m.repository), manifests.map((m) => m.digest), cutoff],
      );
      // The events name the manifests the caller meant to delete: queue those of the ones that went.
      await this.enqueue(c, events?.filter((e) => rows.some((r) => e.payload.includes(r.digest))), Date.now());
      return rows;
    });
  }

  async deleteUnusedLinks(cutoff: number, limit: number, dryRun = false): Promise<number> {
    if (dryRun) {
      const rows = await this.rows<{ n: number }>(
        `SELECT count(*) AS n FROM (SELECT 1 FROM repository_blobs rb WHERE ${UNUSED_LINK('$1')} LIMIT $2) x`,
        [cutoff, limit],
      );
      return rows[0]!.n;
    }
    return this.write(async (c) => {
      const deleted = await c.query(
        `DELETE FROM repository_blobs WHERE (repo_id, digest) IN
           (SELECT rb.repo_id, rb.digest FROM repository_blobs rb WHERE ${UNUSED_LINK('$1')} LIMIT $2)`,
        [cutoff, limit],
      );
      return deleted.rowCount ?? 0;
    });
  }

  unusedBlobs(cutoff: number, after: string, limit: number): Promise<{ digest: string; size: number }[]> {
    return this.rows(
      `SELECT b.digest, b.size FROM blobs b WHERE b.digest COLLATE "C" > $2 AND ${UNUSED_BLOB('$1')}
        ORDER BY b.digest COLLATE "C" LIMIT $3`,
      [cutoff, after, limit],
    );
  }

  deleteUnusedBlobs(digests: string[], cutoff: number, runner: string): Promise<{ digest: string; size: number }[]> {
    if (digests.length === 0) return Promise.resolve([]);
    return this.write(async (c) => {
      const { rows } = await c.query<{ digest: string; size: number }>(
        `DELETE FROM blobs b WHERE b.digest = ANY($1) AND ${UNUSED_BLOB('$2')} RETURNING b.digest, b.size`,
        [digests, cutoff],
      );
      if (rows.length) {
        await c.query(
          `INSERT INTO gc_marks (digest, runner, marked_at) SELECT d, $2, $3 FROM unnest($1::text[]) AS d
           ON CONFLICT (digest) DO UPDATE SET runner = EXCLUDED.runner, marked_at = EXCLUDED.marked_at`,
          [rows.map((r) => r.digest), runner, Date.now()],
        );
      }
      return rows;
    });
  }

  async clearGcMarks(digests: string[]): Promise<void> {
    if (digests.length) await this.run('DELETE FROM gc_marks WHERE digest = ANY($1)', [digests]);
  }

  async gcRunning(): Promise<boolean> {
    return (await this.rows("SELECT 1 FROM leases WHERE name = 'gc' AND until > $1", [Date.now()])).length > 0;
  }

  async recordGcRun(run: { at: number; freedBytes: number }): Promise<void> {
    await this.run('UPDATE gc_state SET last_run_at = $1, last_freed = $2 WHERE id = 1', [run.at, run.freedBytes]);
  }

  // --- leases ------------------------------------------------------------------------

  async acquireLease(name: string, holder: string, ttlMs: number): Promise<boolean> {
    const now = Date.now();
    const taken = await this.run(
      `INSERT INTO leases (name, holder, until) VALUES ($1, $2, $3)
       ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, until = EXCLUDED.until
        WHERE leases.holder = EXCLUDED.holder OR leases.until < $4`,
      [name, holder, now + ttlMs, now],
    );
    return taken > 0;
  }

  async releaseLease(name: string, holder: string): Promise<void> {
    await this.run('DELETE FROM leases WHERE name = $1 AND holder = $2', [name, holder]);
  }

  async lease(name: string): Promise<LeaseState | undefined> {
    return (await this.rows<LeaseState>('SELECT holder, until FROM leases WHERE name = $1', [name]))[0];
  }

  // --- retention -------------------------------------------------------------------

  allTags(): Promise<TagRecord[]> {
    return this.rows<TagRecord>(
      `SELECT r.name AS repository, t.name, t.manifest_digest AS "manifestDigest", t.updated_at AS "updatedAt"
         FROM tags t JOIN repositories r ON r.id = t.repo_id
        ORDER BY r.name COLLATE "C", t.updated_at DESC, t.name COLLATE "C"`,
    );
  }

  retireTag(repository: string, tag: string, digest: string, events?: OutboxEvent[]): Promise<{ tagDeleted: boolean; manifestDeleted: boolean }> {
    return this.write(async (c) => {
      const repoId = await this.repoId(c, repository);
      if (repoId === undefined) return { tagDeleted: false, manifestDeleted: false };
      const tagDeleted = ((await c.query('DELETE FROM tags WHERE repo_id = $1 AND name = $2 AND manifest_digest = $3', [repoId, tag, digest])).rowCount ?? 0) > 0;
      let manifestDeleted = false;
      if (tagDeleted) {
        const { rows } = await c.query<{ held: boolean }>(
          `SELECT EXISTS (SELECT 1 FROM tags t WHERE t.repo_id = $1 AND t.manifest_digest = $2)
               OR EXISTS (SELECT 1 FROM manifest_references x WHERE x.repo_id = $1 AND x.child_digest = $2 AND x.kind = 'manifest') AS held`,
          [repoId, digest],
        );
        if (!rows[0]!.held) manifestDeleted = ((await c.query(DELETE_MANIFEST_AND_REFERRERS, [repository, digest])).rowCount ?? 0) > 0;
        await this.enqueue(c, events, Date.now());
      }
      return { tagDeleted, manifestDeleted };
    });
  }

  // --- the pull-through cache (src/proxy): repositories under `prefix/` ----------------

  recordPulls(pulls: [string, string, number][]): Promise<void> {
    return this.write(async (c) => {
      for (const [repository, digest, at] of pulls) {
        await c.query(
          `INSERT INTO proxy_pulls (repo_id, digest, pulled_at)
           SELECT m.repo_id, m.digest, $3 FROM manifests m JOIN repositories r ON r.id = m.repo_id WHERE r.name = $1 AND m.digest = $2
           ON CONFLICT (repo_id, digest) DO UPDATE SET pulled_at = GREATEST(proxy_pulls.pulled_at, excluded.pulled_at)`,
          [repository, digest, at],
        );
      }
    });
  }

  async cacheSize(prefix: string): Promise<number> {
    const rows = await this.rows<{ bytes: number }>(
      `SELECT COALESCE(SUM(b.size), 0)::bigint AS bytes FROM blobs b WHERE b.digest IN (
         SELECT rb.digest FROM repository_blobs rb JOIN repositories r ON r.id = rb.repo_id WHERE ${UNDER_PREFIX}
         UNION SELECT m.digest FROM manifests m JOIN repositories r ON r.id = m.repo_id WHERE ${UNDER_PREFIX})`,
      [prefix],
    );
    return rows[0]!.bytes;
  }

  cachedImages(prefix: string): Promise<CachedImage[]> {
    return this.rows<CachedImage>(
      `SELECT r.name AS repository, m.digest, COALESCE(p.pulled_at, m.created_at) AS "pulledAt"
         FROM manifests m JOIN repositories r ON r.id = m.repo_id
         LEFT JOIN proxy_pulls p ON p.repo_id = m.repo_id AND p.digest = m.digest
        WHERE ${UNDER_PREFIX}
          AND NOT EXISTS (SELECT 1 FROM manifest_references x WHERE x.repo_id = m.repo_id AND x.child_digest = m.digest AND x.kind = 'manifest')
        ORDER BY "pulledAt", r.name COLLATE "C", m.digest COLLATE "C"`,
      [prefix],
    );
  }

  evictImage(repository: string, digest: string): Promise<void> {
    return this.write(async (c) => {
      const repoId = await this.repoId(c, repository);
      if (repoId === undefined) return;
      const doomed = [digest];
      for (let i = 0; i < doomed.length; i++) {
        const children = await c.query<{ digest: string }>(
          `SELECT child_digest AS digest FROM manifest_references WHERE repo_id = $1 AND manifest_digest = $2 AND kind = 'manifest'`,
          [repoId, doomed[i]],
        );
        const deleted = await c.query(
          `DELETE FROM manifests m WHERE m.repo_id = $1 AND m.digest = $2
             AND NOT EXISTS (SELECT 1 FROM manifest_references x WHERE x.repo_id = m.repo_id AND x.child_digest = m.digest AND x.kind = 'manifest')`,
          [repoId, doomed[i]],
        );
        if (deleted.rowCount) doomed.push(...children.rows.map((r) => r.digest));
      }
      await c.query(
        `DELETE FROM repository_blobs rb WHERE rb.repo_id = $1
           AND NOT EXISTS (SELECT 1 FROM manifest_references x WHERE x.repo_id = rb.repo_id AND x.child_digest = rb.digest)`,
        [repoId],
      );
    });
  }

  // --- scrub, usage, metrics ---------------------------------------------------------

  allBlobs(): Promise<{ digest: string; size: number }[]> {
    return this.rows('SELECT digest, size FROM blobs ORDER BY digest COLLATE "C"');
  }

  async forgetBlob(digest: string): Promise<void> {
    await this.write(async (c) => {
      await c.query('DELETE FROM repository_blobs WHERE digest = $1', [digest]);
      await c.query('DELETE FROM manifests WHERE digest = $1', [digest]);
      await c.query('DELETE FROM blobs WHERE digest = $1', [digest]);
    });
  }

  brokenManifests(): Promise<BrokenManifest[]> {
    return this.rows<BrokenManifest>(
      `SELECT r.name AS repository, x.manifest_digest AS manifest, x.child_digest AS missing
         FROM manifest_references x JOIN repositories r ON r.id = x.repo_id
        WHERE (x.kind = 'manifest' AND NOT EXISTS (SELECT 1 FROM manifests m WHERE m.repo_id = x.repo_id AND m.digest = x.child_digest))
           OR (x.kind <> 'manifest' AND NOT EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.repo_id = x.repo_id AND rb.digest = x.child_digest))
        ORDER BY r.name COLLATE "C", x.manifest_digest COLLATE "C"`,
    );
  }

  danglingTags(): Promise<{ repository: string; tag: string }[]> {
    return this.rows(
      `SELECT r.name AS repository, t.name AS tag FROM tags t JOIN repositories r ON r.id = t.repo_id
        WHERE NOT EXISTS (SELECT 1 FROM manifests m WHERE m.repo_id = t.repo_id AND m.digest = t.manifest_digest)
        ORDER BY r.name COLLATE "C", t.name COLLATE "C"`,
    );
  }

  usage(): Promise<RepositoryUsage[]> {
    return this.rows<RepositoryUsage>(
      `WITH held AS (
         SELECT repo_id, digest FROM repository_blobs
         UNION SELECT repo_id, digest FROM manifests),
       sharing AS (SELECT digest, COUNT(*) AS n FROM held GROUP BY digest)
       SELECT r.name AS repository, SUM(b.size)::bigint AS total,
              SUM(CASE WHEN s.n = 1 THEN b.size ELSE 0 END)::bigint AS "unique", COUNT(*)::bigint AS blobs
         FROM held h JOIN repositories r ON r.id = h.repo_id
         JOIN blobs b ON b.digest = h.digest JOIN sharing s ON s.digest = h.digest
        GROUP BY r.name ORDER BY total DESC, r.name COLLATE "C"`,
    );
  }

  async counts(): Promise<StorageCounts> {
    const rows = await this.rows<StorageCounts>(
      `SELECT (SELECT count(*) FROM repositories) AS repositories, (SELECT count(*) FROM blobs) AS blobs,
              (SELECT COALESCE(SUM(size), 0)::bigint FROM blobs) AS bytes, (SELECT count(*) FROM uploads) AS "uploadSessions"`,
    );
    return rows[0]!;
  }

  // --- users -----------------------------------------------------------------------

  async getUser(name: string): Promise<User | undefined> {
    return (await this.rows<User>(`${USER_SELECT} WHERE u.name = $1`, [name]))[0];
  }

  listUsers(): Promise<User[]> {
    return this.rows<User>(`${USER_SELECT} ORDER BY u.name COLLATE "C"`);
  }

  addUser(user: { name: string; passwordHash: string; admin: boolean; groups: string[] }): Promise<boolean> {
    return this.write(async (c) => {
      const now = Date.now();
      const added = await c.query(
        'INSERT INTO users (name, password_hash, admin, created_at, password_changed_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING',
        [user.name, user.passwordHash, user.admin, now, Math.floor(now / 1000)],
      );
      if (!added.rowCount) return false;
      if (user.groups.length) {
        await c.query('INSERT INTO user_groups (user_name, group_name) SELECT $1, g FROM unnest($2::text[]) AS g ON CONFLICT DO NOTHING', [user.name, user.groups]);
      }
      return true;
    });
  }

  async removeUser(name: string): Promise<boolean> {
    return (await this.run('DELETE FROM users WHERE name = $1', [name])) > 0;
  }

  async setPassword(name: string, passwordHash: string): Promise<boolean> {
    return (await this.run('UPDATE users SET password_hash = $2, password_changed_at = $3 WHERE name = $1', [name, passwordHash, Math.floor(Date.now() / 1000)])) > 0;
  }

  setUserGroups(name: string, groups: string[]): Promise<boolean> {
    return this.write(async (c) => {
      if (!(await c.query('SELECT 1 FROM users WHERE name = $1', [name])).rowCount) return false;
      await c.query('DELETE FROM user_groups WHERE user_name = $1', [name]);
      if (groups.length) {
        await c.query('INSERT INTO user_groups (user_name, group_name) SELECT $1, g FROM unnest($2::text[]) AS g ON CONFLICT DO NOTHING', [name, groups]);
      }
      return true;
    });
  }

  // --- browsing (the web UI) -------------------------------------------------------------

  private async browseRepoId(repository: string): Promise<number | undefined> {
    return (await this.rows<{ id: number }>(BROWSE_SQL.repoId, [repository]))[0]?.id;
  }

  async repositorySummary(repository: string): Promise<RepositorySummary | undefined> {
    const repo = await this.browseRepoId(repository);
    if (repo === undefined) return undefined;
    return (await this.rows<RepositorySummary>(BROWSE_SQL.summary, [repo]))[0];
  }

  async tagsNewestFirst(repository: string, cursor: TagCursor | undefined, contains: string, limit: number): Promise<TagDetail[] | undefined> {
    const repo = await this.browseRepoId(repository);
    if (repo === undefined) return undefined;
    return this.rows<TagDetail>(BROWSE_SQL.tags, [repo, cursor?.time ?? Number.MAX_SAFE_INTEGER, cursor?.name ?? '', contains, limit]);
  }

  async imageSize(repository: string, digest: string): Promise<number> {
    return (await this.rows<{ size: number }>(BROWSE_SQL.imageSize, [repository, digest]))[0]?.size ?? 0;
  }

  async tagsOf(repository: string, digest: string): Promise<string[]> {
    return (await this.rows<{ name: string }>(BROWSE_SQL.tagsOf, [repository, digest])).map((r) => r.name);
  }

  async repositoriesWithBlob(digest: string): Promise<string[]> {
    return (await this.rows<{ name: string }>(BROWSE_SQL.holders, [digest])).map((r) => r.name);
  }

  async lastGcRun(): Promise<{ at: number; freedBytes: number } | undefined> {
    const row = (await this.rows<{ at: number | null; freedBytes: number | null }>(BROWSE_SQL.lastGcRun))[0];
    return row?.at == null ? undefined : { at: row.at, freedBytes: row.freedBytes ?? 0 };
  }

  // --- the event outbox ------------------------------------------------------------------

  async enqueueEvents(events: OutboxEvent[]): Promise<void> {
    if (events.length) await this.write((c) => this.enqueue(c, events, Date.now()));
  }

  async eventEndpoints(): Promise<string[]> {
    return (await this.rows<{ endpoint: string }>('SELECT DISTINCT endpoint FROM event_queue ORDER BY endpoint')).map((r) => r.endpoint);
  }

  eventHead(endpoint: string, limit: number): Promise<QueuedEvent[]> {
    return this.rows<QueuedEvent>(
      `SELECT seq, event_id AS "eventId", payload, attempts, next_attempt_at AS "nextAttemptAt"
         FROM event_queue WHERE endpoint = $1 ORDER BY seq LIMIT $2`,
      [endpoint, limit],
    );
  }

  async removeEvents(seqs: number[]): Promise<void> {
    if (seqs.length) await this.run('DELETE FROM event_queue WHERE seq = ANY($1)', [seqs]);
  }

  async failEvents(seqs: number[], nextAttemptAt: number, error: string): Promise<void> {
    if (seqs.length) {
      await this.run('UPDATE event_queue SET attempts = attempts + 1, next_attempt_at = $2, last_error = $3 WHERE seq = ANY($1)', [seqs, nextAttemptAt, error.slice(0, 500)]);
    }
  }

  dropEventsExcept(names: string[]): Promise<number> {
    return this.run('DELETE FROM event_queue WHERE NOT (endpoint = ANY($1))', [names]);
  }

  async queuedEvents(): Promise<number> {
    return (await this.rows<{ n: number }>('SELECT count(*) AS n FROM event_queue'))[0]!.n;
  }
}
