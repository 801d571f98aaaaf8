// Read-mostly SQL for maintenance: storage usage per repository and the consistency
// checks of scrub, with the few repairs scrub may make.

import type { Db } from './db.js';

import type { RepositoryUsage } from './ports.js';
export type { RepositoryUsage };

export interface BrokenManifest {
  repository: string;
  manifest: string;
  missing: string;
}

export class InspectStore {
  private readonly s;

  constructor(readonly db: Db) {
    this.s = {
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
      stored: db.prepare<[], { bytes: number | null; blobs: number }>('SELECT SUM(size) AS bytes, COUNT(*) AS blobs FROM blobs'),
      blobs: db.prepare<[], { digest: string; size: number }>('SELECT digest, size FROM blobs ORDER BY digest'),
      blobRow: db.prepare<[string], { size: number }>('SELECT size FROM blobs WHERE digest = ?'),
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
    };
  }

  usage(): RepositoryUsage[] {
    return this.s.usage.all();
  }

  stored(): { bytes: number; blobs: number } {
    const row = this.s.stored.get()!;
    return { bytes: row.bytes ?? 0, blobs: row.blobs };
  }

  blobs(): { digest: string; size: number }[] {
    return this.s.blobs.all();
  }

  hasBlob(digest: string): boolean {
    return this.s.blobRow.get(digest) !== undefined;
  }

  brokenManifests(): BrokenManifest[] {
    return this.s.brokenManifests.all();
  }

  danglingTags(): { repository: string; tag: string }[] {
    return this.s.danglingTags.all();
  }

  /**
   * Forgets a blob whose file is gone or corrupt: its links (so HEAD answers 404 and a
   * client pushes it again, which heals every manifest that uses it) and, when it is a
   * manifest's own bytes, those manifests, which can no longer be served.
   */
  forgetBlob(digest: string): void {
    this.db.transaction(() => {
      this.s.forgetLinks.run(digest);
      this.s.forgetManifests.run(digest);
      this.s.forgetBlob.run(digest);
    }).immediate();
  }

  /** Runs `fn` only if the blob has no row, inside a write transaction (see FsBlobStore.placeSync). */
  ifNoRow(digest: string, fn: () => void): boolean {
    return this.db.transaction(() => {
      if (this.s.blobRow.get(digest)) return false;
      fn();
      return true;
    }).immediate();
  }
}
