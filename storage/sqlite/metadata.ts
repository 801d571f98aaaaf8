// The MetadataStore port on SQLite (better-sqlite3, WAL). Statements are prepared once
// and run synchronously, which is what makes SQLite fast here; what must not happen on
// the event loop is waiting for a lock, so every operation runs through `retry`: a busy
// database is tried again after an asynchronous backoff instead of SQLite's blocking
// busy handler. Every change a domain operation makes is one short transaction.

import type { Db } from './db.js';
import { isDiskFull, openDatabase, openInMemory, releaseReserve } from './db.js';
import { prepareBrowse } from './browse.js';
import {
  BlobMarkedError,
  ReadOnlyStoreError,
  type BrokenManifest,
  type CachedImage,
  type LeaseState,
  type ManifestRecord,
  type MetadataStore,
  type MissingReference,
  type NewManifest,
  type OutboxEvent,
  type QueuedEvent,
  type RepositorySummary,
  type RepositoryUsage,
  type StorageCounts,
  type TagCursor,
  type TagDetail,
  type TagRecord,
  type UnusedManifest,
  type UploadLease,
  type UploadSession,
  type User,
} from '../ports.js';

/** The longest a write waits for another process's lock before failing (ms). */
const LOCK_WAIT_MS = 30_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function isBusy(err: unknown): boolean {
  const code = (err as { code?: unknown })?.code;
  return typeof code === 'string' && (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED'));
}

interface ManifestRow {
  digest: string;
  media_type: string;
  size: number;
  artifact_type: string | null;
  subject_digest: string | null;
  annotations: string | null;
}

function toManifest(row: ManifestRow | undefined): ManifestRecord | undefined {
  return row && {
    digest: row.digest,
    mediaType: row.media_type,
    size: row.size,
    artifactType: row.artifact_type,
    subjectDigest: row.subject_digest,
    annotations: row.annotations,
  };
}

interface UploadRow {
  uuid: string;
  repository: string;
  offset: number;
  hash_state: string | null;
  created_at: number;
  updated_at: number;
  lease_holder: string | null;
  lease_until: number;
}

function toSession(row: UploadRow): UploadSession {
  return { id: row.uuid, repository: row.repository, offset: row.offset, hashState: row.hash_state, createdAt: row.created_at, updatedAt: row.updated_at };
}

interface UserRow {
  name: string;
  password_hash: string;
  admin: number;
  created_at: number;
  password_changed_at: number;
  groups: string | null;
}

function toUser(row: UserRow): User {
  return {
    name: row.name,
    passwordHash: row.password_hash,
    admin: row.admin === 1,
    groups: row.groups ? row.groups.split('\n').sort() : [],
    createdAt: row.created_at,
    passwordChangedAt: row.password_changed_at,
  };
}

const MANIFEST_COLUMNS = 'm.digest, m.media_type, m.size, m.artifact_type, m.subject_digest, m.annotations';

/** Conditions under which a manifest is untagged and unused in its repository. */
const UNUSED_MANIFEST = `
  m.created_at < @cutoff
  AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repo_id = m.repo_id AND t.manifest_digest = m.digest)
  AND NOT EXISTS (SELECT 1 FROM manifest_references r WHERE r.repo_id = m.repo_id AND r.child_digest = m.digest AND r.kind = 'manifest')
  AND (m.subject_digest IS NULL OR NOT EXISTS (SELECT 1 FROM manifests s WHERE s.repo_id = m.repo_id AND s.digest = m.subject_digest))`;

/** A repository's link to a blob that none of its manifests references any more. */
const UNUSED_LINK = `
  rb.created_at < @cutoff
  AND (SELECT touched_at FROM blobs b WHERE b.digest = rb.digest) < @cutoff
  AND NOT EXISTS (SELECT 1 FROM manifest_references r WHERE r.repo_id = rb.repo_id AND r.child_digest = rb.digest)`;

/** A blob no repository links, no manifest is, and no manifest references. */
const UNUSED_BLOB = `
  b.touched_at < @cutoff
  AND NOT EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.digest = b.digest)
  AND NOT EXISTS (SELECT 1 FROM manifests m WHERE m.digest = b.digest)
  AND NOT EXISTS (SELECT 1 FROM manifest_references r WHERE r.child_digest = b.digest)`;

/** Repositories under `@prefix/` (a pull-through cache's). */
const UNDER_PREFIX = `substr(r.name, 1, length(@prefix) + 1) = @prefix || '/'`;

const SELECT_USER = `
  SELECT u.name, u.password_hash, u.admin, u.created_at, u.password_changed_at,
         (SELECT group_concat(group_name, char(10)) FROM user_groups g WHERE g.user_name = u.name) AS groups
  FROM users u`;

function prepare(db: Db) {
  return {
    ping: db.prepare('SELECT 1'),
    repoId: db.prepare<[string], { id: number }>('SELECT id FROM repositories WHERE name = ?'),
    insertRepo: db.prepare('INSERT OR IGNORE INTO repositories (name, created_at) VALUES (?, ?)'),
    // A repository serves its linked blobs and its manifests' own bytes.
    blobInRepo: db.prepare<[string, string], { size: number }>(
      `SELECT b.size FROM repositories r
         JOIN repository_blobs rb ON rb.repo_id = r.id
         JOIN blobs b ON b.digest = rb.digest
        WHERE r.name = ? AND rb.digest = ?`,
    ),
    blobLinkedById: db.prepare<[number, string], { one: number }>('SELECT 1 AS one FROM repository_blobs WHERE repo_id = ? AND digest = ?'),
    blobSize: db.prepare<[string], { size: number }>('SELECT size FROM blobs WHERE digest = ?'),
    insertBlob: db.prepare(
      'INSERT INTO blobs (digest, size, created_at, touched_at) VALUES (?, ?, ?, ?) ON CONFLICT(digest) DO UPDATE SET touched_at = MAX(touched_at, excluded.touched_at)',
    ),
    linkBlob: db.prepare('INSERT OR IGNORE INTO repository_blobs (repo_id, digest, created_at) VALUES (?, ?, ?)'),
    unlinkBlob: db.prepare('DELETE FROM repository_blobs WHERE repo_id = ? AND digest = ?'),
    holders: db.prepare<[number, string], { manifest_digest: string }>(
      'SELECT DISTINCT manifest_digest FROM manifest_references WHERE repo_id = ? AND child_digest = ? ORDER BY manifest_digest LIMIT 20',
    ),
    touch: db.prepare('UPDATE blobs SET touched_at = MAX(touched_at, ?) WHERE digest = ?'),
    mark: db.prepare<{ digest: string; now: number }, { runner: string; live: number }>(
      `SELECT g.runner, EXISTS (SELECT 1 FROM leases l WHERE l.name = 'gc' AND l.holder = g.runner AND l.until > @now) AS live
         FROM gc_marks g WHERE g.digest = @digest`,
    ),
    insertMark: db.prepare('INSERT OR REPLACE INTO gc_marks (digest, runner, marked_at) VALUES (?, ?, ?)'),
    deleteMark: db.prepare('DELETE FROM gc_marks WHERE digest = ?'),
    repoWithBlob: db.prepare<[string], { name: string }>(
      'SELECT r.name FROM repository_blobs rb JOIN repositories r ON r.id = rb.repo_id WHERE rb.digest = ? LIMIT 1',
    ),

    insertUpload: db.prepare('INSERT INTO uploads (uuid, repo_id, "offset", created_at, updated_at) VALUES (?, ?, 0, ?, ?)'),
    getUpload: db.prepare<[string], UploadRow>(
      `SELECT u.uuid, r.name AS repository, u."offset" AS "offset", u.hash_state, u.created_at, u.updated_at, u.lease_holder, u.lease_until
         FROM uploads u JOIN repositories r ON r.id = u.repo_id WHERE u.uuid = ?`,
    ),
    takeLease: db.prepare('UPDATE uploads SET lease_holder = ?, lease_until = ? WHERE uuid = ?'),
    renewLease: db.prepare('UPDATE uploads SET lease_until = ? WHERE uuid = ? AND lease_holder = ?'),
    releaseUpload: db.prepare('UPDATE uploads SET lease_holder = NULL, lease_until = 0 WHERE uuid = ? AND lease_holder = ?'),
    progressUpload: db.prepare(
      'UPDATE uploads SET "offset" = ?, hash_state = ?, updated_at = ?, lease_holder = NULL, lease_until = 0 WHERE uuid = ? AND lease_holder = ?',
    ),
    deleteUpload: db.prepare('DELETE FROM uploads WHERE uuid = ?'),
    staleUploads: db.prepare<[number, number], { uuid: string }>('SELECT uuid FROM uploads WHERE updated_at < ? AND lease_until < ?'),
    uploadExists: db.prepare<[string], { one: number }>('SELECT 1 AS one FROM uploads WHERE uuid = ?'),

    manifestByDigest: db.prepare<[string, string], ManifestRow>(
      `SELECT ${MANIFEST_COLUMNS} FROM manifests m JOIN repositories r ON r.id = m.repo_id WHERE r.name = ? AND m.digest = ?`,
    ),
    manifestByTag: db.prepare<[string, string], ManifestRow>(
      `SELECT ${MANIFEST_COLUMNS} FROM repositories r
         JOIN tags t ON t.repo_id = r.id
         JOIN manifests m ON m.repo_id = r.id AND m.digest = t.manifest_digest
        WHERE r.name = ? AND t.name = ?`,
    ),
    manifestExists: db.prepare<[number, string], { one: number }>('SELECT 1 AS one FROM manifests WHERE repo_id = ? AND digest = ?'),
    insertManifest: db.prepare(
      `INSERT INTO manifests (repo_id, digest, media_type, size, artifact_type, subject_digest, annotations, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(repo_id, digest) DO NOTHING`,
    ),
    insertReference: db.prepare('INSERT OR IGNORE INTO manifest_references (repo_id, manifest_digest, child_digest, kind) VALUES (?, ?, ?, ?)'),
    upsertTag: db.prepare(
      `INSERT INTO tags (repo_id, name, manifest_digest, updated_at) VALUES (?, ?, ?, ?)
       ON CONFLICT(repo_id, name) DO UPDATE SET manifest_digest = excluded.manifest_digest, updated_at = excluded.updated_at`,
    ),
    // A manifest goes with its referrers (signatures, SBOMs), and theirs, in its repository.
    deleteManifest: db.prepare(
      `WITH RECURSIVE doomed(digest) AS (
              SELECT @digest
              UNION SELECT m.digest FROM manifests m, doomed d WHERE m.repo_id = @repo AND m.subject_digest = d.digest)
       DELETE FROM manifests WHERE repo_id = @repo AND digest IN (SELECT digest FROM doomed)`,
    ),
    deleteTag: db.prepare('DELETE FROM tags WHERE repo_id = (SELECT id FROM repositories WHERE name = ?) AND name = ?'),
    listTags: db.prepare<[number, string, number], { name: string }>('SELECT name FROM tags WHERE repo_id = ? AND name > ? ORDER BY name LIMIT ?'),
    catalog: db.prepare<[string, number], { name: string }>(
      `SELECT name FROM repositories r
        WHERE name > ? AND EXISTS (SELECT 1 FROM manifests m WHERE m.repo_id = r.id)
        ORDER BY name LIMIT ?`,
    ),
    referrers: db.prepare<[string, string, string, number], ManifestRow>(
      `SELECT ${MANIFEST_COLUMNS} FROM manifests m JOIN repositories r ON r.id = m.repo_id
        WHERE r.name = ? AND m.subject_digest = ? AND m.digest > ? ORDER BY m.digest LIMIT ?`,
    ),

    unusedManifests: db.prepare<{ cutoff: number; limit: number }, UnusedManifest>(
      `SELECT r.name AS repository, m.digest FROM manifests m JOIN repositories r ON r.id = m.repo_id WHERE ${UNUSED_MANIFEST} LIMIT @limit`,
    ),
    deleteUnusedManifest: db.prepare(
      `DELETE FROM manifests AS m WHERE m.repo_id = (SELECT id FROM repositories WHERE name = @repository) AND m.digest = @digest AND ${UNUSED_MANIFEST}`,
    ),
    unusedLinks: db.prepare<{ cutoff: number; limit: number }, { repo: number; digest: string }>(
      `SELECT rb.repo_id AS repo, rb.digest FROM repository_blobs rb WHERE ${UNUSED_LINK} LIMIT @limit`,
    ),
    deleteUnusedLink: db.prepare(`DELETE FROM repository_blobs AS rb WHERE rb.repo_id = @repo AND rb.digest = @digest AND ${UNUSED_LINK}`),
    unusedBlobs: db.prepare<{ cutoff: number; after: string; limit: number }, { digest: string; size: number }>(
      `SELECT b.digest, b.size FROM blobs b WHERE b.digest > @after AND ${UNUSED_BLOB} ORDER BY b.digest LIMIT @limit`,
    ),
    deleteUnusedBlob: db.prepare<{ digest: string; cutoff: number }, { digest: string; size: number }>(
      `DELETE FROM blobs AS b WHERE b.digest = @digest AND ${UNUSED_BLOB} RETURNING digest, size`,
    ),
    gcRunning: db.prepare<[number], { one: number }>(`SELECT 1 AS one FROM leases WHERE name = 'gc' AND until > ?`),
    recordGcRun: db.prepare('UPDATE gc_state SET last_run_at = ?, last_freed = ? WHERE id = 1'),

    getLease: db.prepare<[string], LeaseState>('SELECT holder, until FROM leases WHERE name = ?'),
    takeNamedLease: db.prepare(
      `INSERT INTO leases (name, holder, until) VALUES (@name, @holder, @until)
       ON CONFLICT(name) DO UPDATE SET holder = excluded.holder, until = excluded.until
       WHERE leases.holder = excluded.holder OR leases.until <= @now`,
    ),
    releaseNamedLease: db.prepare('DELETE FROM leases WHERE name = ? AND holder = ?'),

    allTags: db.prepare<[], { repository: string; name: string; manifestDigest: string; updatedAt: number }>(
      `SELECT r.name AS repository, t.name, t.manifest_digest AS manifestDigest, t.updated_at AS updatedAt
         FROM tags t JOIN repositories r ON r.id = t.repo_id ORDER BY r.name, t.updated_at DESC, t.name`,
    ),
    deleteTagAt: db.prepare('DELETE FROM tags WHERE repo_id = ? AND name = ? AND manifest_digest = ?'),
    manifestUnheld: db.prepare<[number, string], { one: number }>(
      `SELECT 1 AS one FROM manifests m
        WHERE m.repo_id = ? AND m.digest = ?
          AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repo_id = m.repo_id AND t.manifest_digest = m.digest)
          AND NOT EXISTS (SELECT 1 FROM manifest_references x WHERE x.repo_id = m.repo_id AND x.child_digest = m.digest AND x.kind = 'manifest')`,
    ),

    usage: db.prepare<[], RepositoryUsage>(
      `WITH held AS (
         SELECT repo_id, digest FROM repository_blobs
         UNION SELECT repo_id, digest FROM manifests),
       sharing AS (SELECT digest, COUNT(*) AS n FROM held GROUP BY digest)
       SELECT r.name AS repository, SUM(b.size) AS total,
              SUM(CASE WHEN s.n = 1 THEN b.size ELSE 0 END) AS "unique", COUNT(*) AS blobs
         FROM held h JOIN repositories r ON r.id = h.repo_id
         JOIN blobs b ON b.digest = h.digest JOIN sharing s ON s.digest = h.digest
        GROUP BY r.name ORDER BY total DESC, r.name`,
    ),
    countBlobs: db.prepare<[], { n: number; bytes: number }>('SELECT count(*) AS n, coalesce(sum(size), 0) AS bytes FROM blobs'),
    countRepositories: db.prepare<[], { n: number }>('SELECT count(*) AS n FROM repositories'),
    countUploads: db.prepare<[], { n: number }>('SELECT count(*) AS n FROM uploads'),
    allBlobs: db.prepare<[], { digest: string; size: number }>('SELECT digest, size FROM blobs ORDER BY digest'),
    brokenManifests: db.prepare<[], BrokenManifest>(
      `SELECT r.name AS repository, x.manifest_digest AS manifest, x.child_digest AS missing
         FROM manifest_references x JOIN repositories r ON r.id = x.repo_id
        WHERE (x.kind = 'manifest' AND NOT EXISTS (SELECT 1 FROM manifests m WHERE m.repo_id = x.repo_id AND m.digest = x.child_digest))
           OR (x.kind <> 'manifest' AND NOT EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.repo_id = x.repo_id AND rb.digest = x.child_digest))
        ORDER BY r.name, x.manifest_digest`,
    ),
    danglingTags: db.prepare<[], { repository: string; tag: string }>(
      `SELECT r.name AS repository, t.name AS tag FROM tags t JOIN repositories r ON r.id = t.repo_id
        WHERE NOT EXISTS (SELECT 1 FROM manifests m WHERE m.repo_id = t.repo_id AND m.digest = t.manifest_digest)`,
    ),
    forgetLinks: db.prepare('DELETE FROM repository_blobs WHERE digest = ?'),
    forgetManifests: db.prepare('DELETE FROM manifests WHERE digest = ?'),
    forgetBlob: db.prepare('DELETE FROM blobs WHERE digest = ?'),

    getUser: db.prepare<[string], UserRow>(`${SELECT_USER} WHERE u.name = ?`),
    listUsers: db.prepare<[], UserRow>(`${SELECT_USER} ORDER BY u.name`),
    insertUser: db.prepare('INSERT INTO users (name, password_hash, admin, created_at, password_changed_at) VALUES (?, ?, ?, ?, ?)'),
    insertGroup: db.prepare('INSERT OR IGNORE INTO user_groups (user_name, group_name) VALUES (?, ?)'),
    deleteUser: db.prepare('DELETE FROM users WHERE name = ?'),
    setPassword: db.prepare('UPDATE users SET password_hash = ?, password_changed_at = ? WHERE name = ?'),

    enqueue: db.prepare('INSERT INTO event_queue (endpoint, event_id, payload, next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?)'),
    eventEndpoints: db.prepare<[], { endpoint: string }>('SELECT DISTINCT endpoint FROM event_queue'),
    eventHead: db.prepare<[string, number], QueuedEvent>(
      'SELECT seq, event_id AS eventId, payload, attempts, next_attempt_at AS nextAttemptAt FROM event_queue WHERE endpoint = ? ORDER BY seq LIMIT ?',
    ),
    removeEvent: db.prepare('DELETE FROM event_queue WHERE seq = ?'),
    failEvent: db.prepare('UPDATE event_queue SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? WHERE seq = ?'),
    countEvents: db.prepare<[], { n: number }>('SELECT count(*) AS n FROM event_queue'),

    // The pull-through cache: repositories under `@prefix/`.
    recordPull: db.prepare(
      `INSERT INTO proxy_pulls (repo_id, digest, pulled_at)
       SELECT m.repo_id, m.digest, @at FROM manifests m JOIN repositories r ON r.id = m.repo_id WHERE r.name = @repository AND m.digest = @digest
       ON CONFLICT(repo_id, digest) DO UPDATE SET pulled_at = MAX(pulled_at, excluded.pulled_at)`,
    ),
    cacheSize: db.prepare<{ prefix: string }, { bytes: number }>(
      `SELECT COALESCE(SUM(b.size), 0) AS bytes FROM blobs b WHERE b.digest IN (
         SELECT rb.digest FROM repository_blobs rb JOIN repositories r ON r.id = rb.repo_id WHERE ${UNDER_PREFIX}
         UNION SELECT m.digest FROM manifests m JOIN repositories r ON r.id = m.repo_id WHERE ${UNDER_PREFIX})`,
    ),
    cachedImages: db.prepare<{ prefix: string }, CachedImage>(
      `SELECT r.name AS repository, m.digest, COALESCE(p.pulled_at, m.created_at) AS pulledAt
         FROM manifests m JOIN repositories r ON r.id = m.repo_id
         LEFT JOIN proxy_pulls p ON p.repo_id = m.repo_id AND p.digest = m.digest
        WHERE ${UNDER_PREFIX}
          AND NOT EXISTS (SELECT 1 FROM manifest_references x WHERE x.repo_id = m.repo_id AND x.child_digest = m.digest AND x.kind = 'manifest')
        ORDER BY pulledAt, r.name, m.digest`,
    ),
    childManifests: db.prepare<{ repository: string; digest: string }, { digest: string }>(
      `SELECT x.child_digest AS digest FROM manifest_references x JOIN repositories r ON r.id = x.repo_id
        WHERE r.name = @repository AND x.manifest_digest = @digest AND x.kind = 'manifest'`,
    ),
    evictManifest: db.prepare(
      `DELETE FROM manifests WHERE repo_id = (SELECT id FROM repositories WHERE name = @repository) AND digest = @digest
         AND NOT EXISTS (SELECT 1 FROM manifest_references x WHERE x.repo_id = manifests.repo_id AND x.child_digest = manifests.digest AND x.kind = 'manifest')`,
    ),
    unlinkUnreferenced: db.prepare(
      `DELETE FROM repository_blobs AS rb WHERE rb.repo_id = (SELECT id FROM repositories WHERE name = @repository)
         AND NOT EXISTS (SELECT 1 FROM manifest_references x WHERE x.repo_id = rb.repo_id AND x.child_digest = rb.digest)`,
    ),
  };
}

export class SqliteMetadataStore implements MetadataStore {
  private readonly s: ReturnType<typeof prepare>;
  private readonly browse: ReturnType<typeof prepareBrowse>;

  constructor(
    private readonly db: Db,
    readonly readOnly = false,
    /** Where the space reserve is (storage/sqlite/db.ts), for a write that finds the disk full. */
    private readonly dataDir?: string,
  ) {
    this.s = prepare(db);
    this.browse = prepareBrowse(db);
  }

  static open(dataDir: string, options: { readOnly?: boolean } = {}): SqliteMetadataStore {
    return new SqliteMetadataStore(openDatabase(dataDir, options), options.readOnly ?? false, dataDir);
  }

  /**
   * A private in-memory copy for a dry run: the collection runs on it for real and
   * nothing reaches the database, which is only read (no write lock is taken).
   */
  async snapshot(): Promise<SqliteMetadataStore> {
    return new SqliteMetadataStore(openInMemory(await this.retry(() => this.db.serialize())));
  }

  /**
   * Runs `fn`, trying again after an asynchronous backoff (1 ms doubling to 100 ms) while
   * another connection holds the lock, for at most LOCK_WAIT_MS.
   */
  private async retry<T>(fn: () => T): Promise<T> {
    for (let wait = 1, waited = 0; ; ) {
      try {
        return fn();
      } catch (err) {
        if (!isBusy(err) || waited >= LOCK_WAIT_MS) throw err;
      }
      await sleep(wait);
      waited += wait;
      wait = Math.min(wait * 2, 100);
    }
  }

  /**
   * A write transaction (IMMEDIATE: the lock is taken at BEGIN, so a busy database fails
   * before any work). `freesSpace`: a deletion (a DELETE, a collection and its lease),
   * which on a full disk gives the space reserve up and tries again, since it is what
   * makes room; other writes leave the reserve for those and for the next start-up.
   */
  private async write<T>(fn: () => T, freesSpace = false): Promise<T> {
    if (this.readOnly) throw new ReadOnlyStoreError('the metadata store is open read-only');
    const run = () => this.retry(() => this.db.transaction(fn).immediate());
    try {
      return await run();
    } catch (err) {
      if (!freesSpace || !isDiskFull(err) || !this.dataDir || !releaseReserve(this.dataDir)) throw err;
      return run();
    }
  }

  private read<T>(fn: () => T): Promise<T> {
    return this.retry(fn);
  }

  async close(): Promise<void> {
    this.db.close();
  }

  async ping(): Promise<void> {
    await this.read(() => this.s.ping.get());
  }

  private ensureRepository(name: string): number {
    const existing = this.s.repoId.get(name);
    if (existing) return existing.id;
    this.s.insertRepo.run(name, Date.now());
    return this.s.repoId.get(name)!.id;
  }

  private enqueueIn(events: OutboxEvent[] | undefined, now: number): void {
    for (const e of events ?? []) this.s.enqueue.run(e.endpoint, e.eventId, e.payload, now, now);
  }

  /** Refuses a row for a digest whose object a live collection is deleting; drops a dead runner's mark. */
  private checkMark(digest: string, now: number): void {
    const mark = this.s.mark.get({ digest, now });
    if (!mark) return;
    if (mark.live) throw new BlobMarkedError(digest, mark.runner);
    this.s.deleteMark.run(digest);
  }

  blobInRepository(repository: string, digest: string): Promise<number | undefined> {
    return this.read(() => this.s.blobInRepo.get(repository, digest)?.size);
  }

  blobSize(digest: string): Promise<number | undefined> {
    return this.read(() => this.s.blobSize.get(digest)?.size);
  }

  aRepositoryWithBlob(digest: string): Promise<string | undefined> {
    return this.read(() => this.s.repoWithBlob.get(digest)?.name);
  }

  addBlob(blob: { repository: string; digest: string; size: number; uploadId?: string; events?: OutboxEvent[] }): Promise<void> {
    return this.write(() => {
      const now = Date.now();
      this.checkMark(blob.digest, now);
      const repoId = this.ensureRepository(blob.repository);
      this.s.insertBlob.run(blob.digest, blob.size, now, now);
      this.s.linkBlob.run(repoId, blob.digest, now);
      if (blob.uploadId) this.s.deleteUpload.run(blob.uploadId);
      this.enqueueIn(blob.events, now);
    });
  }

  mountBlob(repository: string, digest: string, events?: OutboxEvent[]): Promise<boolean> {
    return this.write(() => {
      if (!this.s.blobSize.get(digest)) return false;
      const now = Date.now();
      this.s.linkBlob.run(this.ensureRepository(repository), digest, now);
      this.s.touch.run(now, digest);
      this.enqueueIn(events, now);
      return true;
    });
  }

  unlinkBlob(repository: string, digest: string, events?: OutboxEvent[]): Promise<'unlinked' | 'unknown' | { heldBy: string[] }> {
    return this.write(() => {
      const repoId = this.s.repoId.get(repository)?.id;
      if (repoId === undefined || !this.s.blobLinkedById.get(repoId, digest)) return 'unknown' as const;
      const heldBy = this.s.holders.all(repoId, digest).map((r) => r.manifest_digest);
      if (heldBy.length > 0) return { heldBy };
      this.s.unlinkBlob.run(repoId, digest);
      this.enqueueIn(events, Date.now());
      return 'unlinked' as const;
    }, true);
  }

  touchBlobs(touches: ReadonlyMap<string, number>): Promise<void> {
    return this.write(() => {
      for (const [digest, at] of touches) this.s.touch.run(at, digest);
    });
  }

  putManifest(m: NewManifest, events?: OutboxEvent[]): Promise<MissingReference | undefined> {
    return this.write((): MissingReference | undefined => {
      const now = Date.now();
      const repoId = this.ensureRepository(m.repository);
      for (const blob of m.referencesFetchedLater ? [] : m.blobs) {
        if (!this.s.blobLinkedById.get(repoId, blob.digest)) return { digest: blob.digest, kind: 'blob' };
      }
      for (const child of m.referencesFetchedLater ? [] : m.children) {
        if (!this.s.manifestExists.get(repoId, child)) return { digest: child, kind: 'manifest' };
      }
      this.checkMark(m.digest, now);
      this.s.insertBlob.run(m.digest, m.size, now, now);
      this.s.insertManifest.run(repoId, m.digest, m.mediaType, m.size, m.artifactType, m.subject, m.annotations, now);
      for (const blob of m.blobs) {
        this.s.insertReference.run(repoId, m.digest, blob.digest, blob.kind);
        this.s.touch.run(now, blob.digest);
      }
      for (const child of m.children) this.s.insertReference.run(repoId, m.digest, child, 'manifest');
      for (const tag of m.tags) this.s.upsertTag.run(repoId, tag, m.digest, now);
      this.enqueueIn(events, now);
      return undefined;
    });
  }

  manifestByDigest(repository: string, digest: string): Promise<ManifestRecord | undefined> {
    return this.read(() => toManifest(this.s.manifestByDigest.get(repository, digest)));
  }

  manifestByTag(repository: string, tag: string): Promise<ManifestRecord | undefined> {
    return this.read(() => toManifest(this.s.manifestByTag.get(repository, tag)));
  }

  deleteManifest(repository: string, digest: string, events?: OutboxEvent[]): Promise<boolean> {
    return this.write(() => this.deleteManifestIn(repository, digest, events), true);
  }

  private deleteManifestIn(repository: string, digest: string, events?: OutboxEvent[]): boolean {
    const repo = this.s.repoId.get(repository)?.id;
    if (repo === undefined || !this.s.manifestExists.get(repo, digest)) return false;
    this.s.deleteManifest.run({ repo, digest });
    this.enqueueIn(events, Date.now());
    return true;
  }

  deleteTag(repository: string, tag: string, events?: OutboxEvent[]): Promise<boolean> {
    return this.write(() => {
      if (this.s.deleteTag.run(repository, tag).changes === 0) return false;
      this.enqueueIn(events, Date.now());
      return true;
    }, true);
  }

  listTags(repository: string, after: string, limit: number): Promise<string[] | undefined> {
    return this.read(() => {
      const repoId = this.s.repoId.get(repository)?.id;
      return repoId === undefined ? undefined : this.s.listTags.all(repoId, after, limit).map((r) => r.name);
    });
  }

  catalog(after: string, limit: number): Promise<string[]> {
    return this.read(() => this.s.catalog.all(after, limit).map((r) => r.name));
  }

  referrers(repository: string, subject: string, after = '', limit = -1): Promise<ManifestRecord[]> {
    return this.read(() => this.s.referrers.all(repository, subject, after, limit).map((r) => toManifest(r)!));
  }

  createUpload(id: string, repository: string): Promise<void> {
    return this.write(() => {
      const now = Date.now();
      this.s.insertUpload.run(id, this.ensureRepository(repository), now, now);
    });
  }

  getUpload(id: string): Promise<UploadSession | undefined> {
    return this.read(() => {
      const row = this.s.getUpload.get(id);
      return row && toSession(row);
    });
  }

  leaseUpload(id: string, lease: UploadLease, replacing?: string): Promise<UploadSession | { busyWith: string } | undefined> {
    return this.write(() => {
      const row = this.s.getUpload.get(id);
      if (!row) return undefined;
      const now = Date.now();
      const holder = row.lease_holder;
      if (holder && holder !== lease.holder && holder !== replacing && row.lease_until > now) return { busyWith: holder };
      this.s.takeLease.run(lease.holder, now + lease.ttlMs, id);
      return toSession(row);
    });
  }

  renewUploadLease(id: string, lease: UploadLease): Promise<boolean> {
    return this.write(() => this.s.renewLease.run(Date.now() + lease.ttlMs, id, lease.holder).changes > 0);
  }

  releaseUpload(id: string, holder: string, progress?: { offset: number; hashState: string | null }): Promise<void> {
    return this.write(() => {
      if (progress) this.s.progressUpload.run(progress.offset, progress.hashState, Date.now(), id, holder);
      else this.s.releaseUpload.run(id, holder);
    });
  }

  deleteUpload(id: string): Promise<void> {
    return this.write(() => {
      this.s.deleteUpload.run(id);
    }, true);
  }

  expireUploads(before: number): Promise<string[]> {
    return this.write(() => {
      const ids = this.s.staleUploads.all(before, Date.now()).map((r) => r.uuid);
      for (const id of ids) this.s.deleteUpload.run(id);
      return ids;
    }, true);
  }

  existingUploads(ids: string[]): Promise<Set<string>> {
    return this.read(() => new Set(ids.filter((id) => this.s.uploadExists.get(id))));
  }

  unusedManifests(cutoff: number, limit: number): Promise<UnusedManifest[]> {
    return this.read(() => this.s.unusedManifests.all({ cutoff, limit }));
  }

  deleteUnusedManifests(manifests: UnusedManifest[], cutoff: number, events?: OutboxEvent[]): Promise<UnusedManifest[]> {
    return this.write(() => {
      const deleted = manifests.filter((m) => this.s.deleteUnusedManifest.run({ repository: m.repository, digest: m.digest, cutoff }).changes > 0);
      if (deleted.length) this.enqueueIn(events, Date.now());
      return deleted;
    }, true);
  }

  deleteUnusedLinks(cutoff: number, limit: number): Promise<number> {
    return this.write(() => {
      let deleted = 0;
      for (const link of this.s.unusedLinks.all({ cutoff, limit })) deleted += this.s.deleteUnusedLink.run({ ...link, cutoff }).changes;
      return deleted;
    }, true);
  }

  unusedBlobs(cutoff: number, after: string, limit: number): Promise<{ digest: string; size: number }[]> {
    return this.read(() => this.s.unusedBlobs.all({ cutoff, after, limit }));
  }

  deleteUnusedBlobs(digests: string[], cutoff: number, runner: string): Promise<{ digest: string; size: number }[]> {
    return this.write(() => {
      const now = Date.now();
      const deleted: { digest: string; size: number }[] = [];
      for (const digest of digests) {
        const row = this.s.deleteUnusedBlob.get({ digest, cutoff });
        if (!row) continue;
        this.s.insertMark.run(digest, runner, now);
        deleted.push(row);
      }
      return deleted;
    }, true);
  }

  markOrphanObjects(digests: string[], runner: string): Promise<string[]> {
    return this.write(() => {
      const now = Date.now();
      return digests.filter((digest) => {
        if (this.s.blobSize.get(digest) || this.s.mark.get({ digest, now })) return false;
        this.s.insertMark.run(digest, runner, now);
        return true;
      });
    }, true);
  }

  clearGcMarks(digests: string[]): Promise<void> {
    return this.write(() => {
      for (const digest of digests) this.s.deleteMark.run(digest);
    }, true);
  }

  gcRunning(): Promise<boolean> {
    return this.read(() => this.s.gcRunning.get(Date.now()) !== undefined);
  }

  recordGcRun(run: { at: number; freedBytes: number }): Promise<void> {
    return this.write(() => {
      this.s.recordGcRun.run(run.at, run.freedBytes);
    }, true);
  }

  acquireLease(name: string, holder: string, ttlMs: number): Promise<boolean> {
    return this.write(() => {
      const now = Date.now();
      return this.s.takeNamedLease.run({ name, holder, until: now + ttlMs, now }).changes > 0;
    }, true);
  }

  releaseLease(name: string, holder: string): Promise<void> {
    return this.write(() => {
      this.s.releaseNamedLease.run(name, holder);
    }, true);
  }

  lease(name: string): Promise<LeaseState | undefined> {
    return this.read(() => this.s.getLease.get(name));
  }

  allTags(): Promise<TagRecord[]> {
    return this.read(() => this.s.allTags.all());
  }

  retireTag(repository: string, tag: string, digest: string, events?: OutboxEvent[]): Promise<{ tagDeleted: boolean; manifestDeleted: boolean }> {
    return this.write(() => {
      const repo = this.s.repoId.get(repository)?.id;
      if (repo === undefined || this.s.deleteTagAt.run(repo, tag, digest).changes === 0) return { tagDeleted: false, manifestDeleted: false };
      this.enqueueIn(events, Date.now());
      const manifestDeleted = this.s.manifestUnheld.get(repo, digest) !== undefined && this.deleteManifestIn(repository, digest);
      return { tagDeleted: true, manifestDeleted };
    }, true);
  }

  recordPulls(pulls: [string, string, number][]): Promise<void> {
    return this.write(() => {
      for (const [repository, digest, at] of pulls) this.s.recordPull.run({ repository, digest, at });
    });
  }

  cacheSize(prefix: string): Promise<number> {
    return this.read(() => this.s.cacheSize.get({ prefix })!.bytes);
  }

  cachedImages(prefix: string): Promise<CachedImage[]> {
    return this.read(() => this.s.cachedImages.all({ prefix }));
  }

  evictImage(repository: string, digest: string): Promise<void> {
    return this.write(() => {
      const doomed = [digest];
      for (let i = 0; i < doomed.length; i++) {
        const d = doomed[i]!;
        const children = this.s.childManifests.all({ repository, digest: d }).map((c) => c.digest);
        if (this.s.evictManifest.run({ repository, digest: d }).changes > 0) doomed.push(...children);
      }
      this.s.unlinkUnreferenced.run({ repository });
    }, true);
  }

  allBlobs(): Promise<{ digest: string; size: number }[]> {
    return this.read(() => this.s.allBlobs.all());
  }

  forgetBlob(digest: string): Promise<void> {
    return this.write(() => {
      this.s.forgetLinks.run(digest);
      this.s.forgetManifests.run(digest);
      this.s.forgetBlob.run(digest);
    }, true);
  }

  brokenManifests(): Promise<BrokenManifest[]> {
    return this.read(() => this.s.brokenManifests.all());
  }

  danglingTags(): Promise<{ repository: string; tag: string }[]> {
    return this.read(() => this.s.danglingTags.all());
  }

  usage(): Promise<RepositoryUsage[]> {
    return this.read(() => this.s.usage.all());
  }

  counts(): Promise<StorageCounts> {
    return this.read(() => {
      const b = this.s.countBlobs.get()!;
      return {
        repositories: this.s.countRepositories.get()!.n,
        blobs: b.n,
        bytes: b.bytes,
        uploadSessions: this.s.countUploads.get()!.n,
      };
    });
  }

  repositorySummary(repository: string): Promise<RepositorySummary | undefined> {
    return this.read(() => {
      const repo = this.s.repoId.get(repository);
      return repo && this.browse.summary.get({ repo: repo.id });
    });
  }

  tagsNewestFirst(repository: string, cursor: TagCursor | undefined, contains: string, limit: number): Promise<TagDetail[] | undefined> {
    return this.read(() => {
      const repo = this.s.repoId.get(repository);
      if (!repo) return undefined;
      const beforeTime = cursor?.time ?? Number.MAX_SAFE_INTEGER;
      return this.browse.tags.all({ repo: repo.id, beforeTime, afterName: cursor?.name ?? '', contains, limit });
    });
  }

  imageSize(repository: string, digest: string): Promise<number> {
    return this.read(() => this.browse.imageSize.get({ repository, digest })!.size);
  }

  tagsOf(repository: string, digest: string): Promise<string[]> {
    return this.read(() => this.browse.tagsOf.all(repository, digest).map((r) => r.name));
  }

  repositoriesWithBlob(digest: string): Promise<string[]> {
    return this.read(() => this.browse.holders.all(digest).map((r) => r.name));
  }

  lastGcRun(): Promise<{ at: number; freedBytes: number } | undefined> {
    return this.read(() => {
      const row = this.browse.lastGcRun.get();
      return row?.at == null ? undefined : { at: row.at, freedBytes: row.freedBytes ?? 0 };
    });
  }

  getUser(name: string): Promise<User | undefined> {
    return this.read(() => {
      const row = this.s.getUser.get(name);
      return row && toUser(row);
    });
  }

  listUsers(): Promise<User[]> {
    return this.read(() => this.s.listUsers.all().map(toUser));
  }

  addUser(user: { name: string; passwordHash: string; admin: boolean; groups: string[] }): Promise<boolean> {
    return this.write(() => {
      if (this.s.getUser.get(user.name)) return false;
      const now = Date.now();
      this.s.insertUser.run(user.name, user.passwordHash, user.admin ? 1 : 0, now, Math.floor(now / 1000));
      for (const group of user.groups) this.s.insertGroup.run(user.name, group);
      return true;
    });
  }

  removeUser(name: string): Promise<boolean> {
    return this.write(() => this.s.deleteUser.run(name).changes > 0);
  }

  setPassword(name: string, passwordHash: string): Promise<boolean> {
    return this.write(() => this.s.setPassword.run(passwordHash, Math.floor(Date.now() / 1000), name).changes > 0);
  }

  setUserGroups(name: string, groups: string[]): Promise<boolean> {
    return this.write(() => {
      if (!this.s.getUser.get(name)) return false;
      this.browse.clearGroups.run(name);
      for (const group of groups) this.s.insertGroup.run(name, group);
      return true;
    });
  }

  enqueueEvents(events: OutboxEvent[]): Promise<void> {
    if (events.length === 0) return Promise.resolve();
    return this.write(() => this.enqueueIn(events, Date.now()));
  }

  eventEndpoints(): Promise<string[]> {
    return this.read(() => this.s.eventEndpoints.all().map((r) => r.endpoint));
  }

  eventHead(endpoint: string, limit: number): Promise<QueuedEvent[]> {
    return this.read(() => this.s.eventHead.all(endpoint, limit));
  }

  removeEvents(seqs: number[]): Promise<void> {
    return this.write(() => {
      for (const seq of seqs) this.s.removeEvent.run(seq);
    });
  }

  failEvents(seqs: number[], nextAttemptAt: number, error: string): Promise<void> {
    return this.write(() => {
      for (const seq of seqs) this.s.failEvent.run(nextAttemptAt, error.slice(0, 500), seq);
    });
  }

  dropEventsExcept(names: string[]): Promise<number> {
    return this.write(() => {
      const where = names.length ? `WHERE endpoint NOT IN (${names.map(() => '?').join(', ')})` : '';
      return this.db.prepare(`DELETE FROM event_queue ${where}`).run(...names).changes;
    }, true);
  }

  queuedEvents(): Promise<number> {
    return this.read(() => this.s.countEvents.get()!.n);
  }
}
