// The registry's metadata in SQLite: repositories, blob links, manifests, their
// references, tags and upload sessions. Every statement is prepared once; every
// change a request makes happens in one transaction.

import type { Db } from './db.js';

export interface ManifestRow {
  digest: string;
  media_type: string;
  size: number;
  artifact_type: string | null;
  subject_digest: string | null;
  annotations: string | null;
}

export interface UploadRow {
  uuid: string;
  repo_id: number;
  repository: string;
  offset: number;
  created_at: number;
  updated_at: number;
}

import type { NewManifest, MissingReference } from './ports.js';
export type { NewManifest, MissingReference };

export class MetadataStore {
  private readonly s;

  constructor(private readonly db: Db) {
    this.s = {
      repoId: db.prepare<[string], { id: number }>('SELECT id FROM repositories WHERE name = ?'),
      insertRepo: db.prepare('INSERT OR IGNORE INTO repositories (name, created_at) VALUES (?, ?)'),
      blobInRepo: db.prepare<[string, string], { size: number }>(
        `SELECT b.size FROM repositories r
           JOIN repository_blobs rb ON rb.repo_id = r.id
           JOIN blobs b ON b.digest = rb.digest
          WHERE r.name = ? AND rb.digest = ?`,
      ),
      blobLinkedById: db.prepare<[number, string], { size: number }>(
        'SELECT b.size FROM repository_blobs rb JOIN blobs b ON b.digest = rb.digest WHERE rb.repo_id = ? AND rb.digest = ?',
      ),
      blobSize: db.prepare<[string], { size: number }>('SELECT size FROM blobs WHERE digest = ?'),
      insertBlob: db.prepare(
        'INSERT INTO blobs (digest, size, created_at, touched_at) VALUES (?, ?, ?, ?) ON CONFLICT(digest) DO UPDATE SET touched_at = excluded.touched_at',
      ),
      linkBlob: db.prepare('INSERT OR IGNORE INTO repository_blobs (repo_id, digest, created_at) VALUES (?, ?, ?)'),
      unlinkBlob: db.prepare(
        'DELETE FROM repository_blobs WHERE repo_id = (SELECT id FROM repositories WHERE name = ?) AND digest = ?',
      ),
      touchBlob: db.prepare('UPDATE blobs SET touched_at = ? WHERE digest = ?'),
      insertUpload: db.prepare('INSERT INTO uploads (uuid, repo_id, "offset", created_at, updated_at) VALUES (?, ?, 0, ?, ?)'),
      getUpload: db.prepare<[string], UploadRow>(
        `SELECT u.uuid, u.repo_id, r.name AS repository, u."offset" AS "offset", u.created_at, u.updated_at
           FROM uploads u JOIN repositories r ON r.id = u.repo_id WHERE u.uuid = ?`,
      ),
      setUploadOffset: db.prepare('UPDATE uploads SET "offset" = ?, updated_at = ? WHERE uuid = ?'),
      deleteUpload: db.prepare('DELETE FROM uploads WHERE uuid = ?'),
      manifestByDigest: db.prepare<[string, string], ManifestRow>(
        `SELECT m.digest, m.media_type, m.size, m.artifact_type, m.subject_digest, m.annotations
           FROM manifests m JOIN repositories r ON r.id = m.repo_id WHERE r.name = ? AND m.digest = ?`,
      ),
      manifestByTag: db.prepare<[string, string], ManifestRow>(
        `SELECT m.digest, m.media_type, m.size, m.artifact_type, m.subject_digest, m.annotations
           FROM repositories r
           JOIN tags t ON t.repo_id = r.id
           JOIN manifests m ON m.repo_id = r.id AND m.digest = t.manifest_digest
          WHERE r.name = ? AND t.name = ?`,
      ),
      manifestExists: db.prepare<[number, string], { one: number }>(
        'SELECT 1 AS one FROM manifests WHERE repo_id = ? AND digest = ?',
      ),
      insertManifest: db.prepare(
        `INSERT INTO manifests (repo_id, digest, media_type, size, artifact_type, subject_digest, annotations, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(repo_id, digest) DO NOTHING`,
      ),
      insertReference: db.prepare(
        'INSERT OR IGNORE INTO manifest_references (repo_id, manifest_digest, child_digest, kind) VALUES (?, ?, ?, ?)',
      ),
      upsertTag: db.prepare(
        `INSERT INTO tags (repo_id, name, manifest_digest, updated_at) VALUES (?, ?, ?, ?)
         ON CONFLICT(repo_id, name) DO UPDATE SET manifest_digest = excluded.manifest_digest, updated_at = excluded.updated_at`,
      ),
      // A manifest goes with its referrers (signatures, SBOMs), and theirs, in its repository.
      deleteManifest: db.prepare(
        `WITH RECURSIVE repo(id) AS (SELECT id FROM repositories WHERE name = @repository),
              doomed(digest) AS (
                SELECT @digest
                UNION SELECT m.digest FROM manifests m, doomed d, repo WHERE m.repo_id = repo.id AND m.subject_digest = d.digest)
         DELETE FROM manifests WHERE repo_id = (SELECT id FROM repo) AND digest IN (SELECT digest FROM doomed)`,
      ),
      deleteTag: db.prepare('DELETE FROM tags WHERE repo_id = (SELECT id FROM repositories WHERE name = ?) AND name = ?'),
      listTags: db.prepare<[number, string, number], { name: string }>(
        'SELECT name FROM tags WHERE repo_id = ? AND name > ? ORDER BY name LIMIT ?',
      ),
      catalog: db.prepare<[string, number], { name: string }>(
        `SELECT name FROM repositories r
          WHERE name > ? AND EXISTS (SELECT 1 FROM manifests m WHERE m.repo_id = r.id)
          ORDER BY name LIMIT ?`,
      ),
      referrers: db.prepare<[string, string], ManifestRow>(
        `SELECT m.digest, m.media_type, m.size, m.artifact_type, m.subject_digest, m.annotations
           FROM manifests m JOIN repositories r ON r.id = m.repo_id
          WHERE r.name = ? AND m.subject_digest = ? ORDER BY m.digest`,
      ),
      repoWithBlob: db.prepare<[string], { name: string }>(
        'SELECT r.name FROM repository_blobs rb JOIN repositories r ON r.id = rb.repo_id WHERE rb.digest = ? LIMIT 1',
      ),
    };
  }

  repositoryId(name: string): number | undefined {
    return this.s.repoId.get(name)?.id;
  }

  private ensureRepository(name: string): number {
    const existing = this.s.repoId.get(name);
    if (existing) return existing.id;
    this.s.insertRepo.run(name, Date.now());
    return this.s.repoId.get(name)!.id;
  }

  /** Size of a blob the repository may serve, or undefined. */
  blobInRepository(repository: string, digest: string): number | undefined {
    return this.s.blobInRepo.get(repository, digest)?.size;
  }

  /** Size of a stored blob, whatever repository has it. */
  blobSize(digest: string): number | undefined {
    return this.s.blobSize.get(digest)?.size;
  }

  /** Some repository that links the blob, for a mount without `from`. */
  aRepositoryWithBlob(digest: string): string | undefined {
    return this.s.repoWithBlob.get(digest)?.name;
  }

  /**
   * Records a verified blob and links it to a repository, in one transaction that first
   * runs `place` (the rename of its file into the store, see FsBlobStore.placeSync) when
   * the blob is not stored yet. Resolves to whether it placed the file: when not, the
   * upload's file is a duplicate for the caller to remove. (Renaming over an existing
   * blob would free the old file's blocks inside the transaction: 0.25 s per GiB.)
   */
  addBlob(repository: string, digest: string, size: number, place: () => void, uploadUuid?: string): boolean {
    return this.db.transaction(() => {
      const placed = !this.s.blobSize.get(digest);
      if (placed) place();
      const now = Date.now();
      const repoId = this.ensureRepository(repository);
      this.s.insertBlob.run(digest, size, now, now);
      this.s.linkBlob.run(repoId, digest, now);
      if (uploadUuid) this.s.deleteUpload.run(uploadUuid);
      return placed;
    }).immediate();
  }


  /** Links an existing blob into another repository (a mount); false when the blob is not stored. */
  mountBlob(repository: string, digest: string): boolean {
    return this.db.transaction(() => {
      if (!this.s.blobSize.get(digest)) return false;
      const now = Date.now();
      this.s.linkBlob.run(this.ensureRepository(repository), digest, now);
      this.s.touchBlob.run(now, digest);
      return true;
    }).immediate();
  }

  unlinkBlob(repository: string, digest: string): boolean {
    return this.s.unlinkBlob.run(repository, digest).changes > 0;
  }

  createUpload(repository: string, uuid: string): void {
    const now = Date.now();
    this.db.transaction(() => {
      this.s.insertUpload.run(uuid, this.ensureRepository(repository), now, now);
    }).immediate();
  }

  getUpload(uuid: string): UploadRow | undefined {
    return this.s.getUpload.get(uuid);
  }

  setUploadOffset(uuid: string, offset: number): void {
    this.s.setUploadOffset.run(offset, Date.now(), uuid);
  }

  deleteUpload(uuid: string): void {
    this.s.deleteUpload.run(uuid);
  }

  manifestByDigest(repository: string, digest: string): ManifestRow | undefined {
    return this.s.manifestByDigest.get(repository, digest);
  }

  manifestByTag(repository: string, tag: string): ManifestRow | undefined {
    return this.s.manifestByTag.get(repository, tag);
  }

  /**
   * Records a manifest with its references and tags. The references are checked inside
   * the same transaction, so a concurrent delete cannot leave a manifest whose blobs
   * are gone: either everything it needs is there and it is stored, or nothing changes.
   */
  putManifest(m: NewManifest, place: () => void): MissingReference | undefined {
    return this.db.transaction((): MissingReference | undefined => {
      const now = Date.now();
      const repoId = this.ensureRepository(m.repository);
      for (const blob of m.referencesFetchedLater ? [] : m.blobs) {
        if (!this.s.blobLinkedById.get(repoId, blob.digest)) return { digest: blob.digest, kind: 'blob' };
      }
      for (const child of m.referencesFetchedLater ? [] : m.children) {
        if (!this.s.manifestExists.get(repoId, child)) return { digest: child, kind: 'manifest' };
      }
      place();
      this.s.insertBlob.run(m.digest, m.size, now, now);
      this.s.insertManifest.run(repoId, m.digest, m.mediaType, m.size, m.artifactType, m.subject, m.annotations, now);
      for (const blob of m.blobs) {
        this.s.insertReference.run(repoId, m.digest, blob.digest, blob.kind);
        this.s.touchBlob.run(now, blob.digest);
      }
      for (const child of m.children) this.s.insertReference.run(repoId, m.digest, child, 'manifest');
      for (const tag of m.tags) this.s.upsertTag.run(repoId, tag, m.digest, now);
      return undefined;
    }).immediate();
  }

  /** Deletes a manifest from a repository; its tags and referrers go with it. */
  deleteManifest(repository: string, digest: string): boolean {
    return this.db.transaction(() => {
      if (!this.s.manifestByDigest.get(repository, digest)) return false;
      this.s.deleteManifest.run({ repository, digest });
      return true;
    }).immediate();
  }

  deleteTag(repository: string, tag: string): boolean {
    return this.s.deleteTag.run(repository, tag).changes > 0;
  }

  listTags(repoId: number, after: string, limit: number): string[] {
    return this.s.listTags.all(repoId, after, limit).map((r) => r.name);
  }

  catalog(after: string, limit: number): string[] {
    return this.s.catalog.all(after, limit).map((r) => r.name);
  }

  referrers(repository: string, subject: string): ManifestRow[] {
    return this.s.referrers.all(repository, subject);
  }
}
