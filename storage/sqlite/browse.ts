// The SQLite statements behind the MetadataStore's browsing methods (the web UI): a
// repository's counts and sizes, its tags newest first, what an image adds up to, who
// else holds a blob, the groups of a user. Every one an index or primary-key range;
// tags newest first read the tags_updated index (migrations/sqlite/007_browse.sql).

import type { Db } from './db.js';

export function prepareBrowse(db: Db) {
  return {
    // One pass over the repository's manifests for their bytes and the newest push.
    summary: db.prepare<{ repo: number }, { tags: number; bytes: number; lastPush: number | null }>(
      `SELECT (SELECT COUNT(*) FROM tags WHERE repo_id = @repo) AS tags,
              (SELECT COALESCE(SUM(b.size), 0) FROM repository_blobs rb JOIN blobs b ON b.digest = rb.digest WHERE rb.repo_id = @repo) + m.size AS bytes,
              m.lastPush
         FROM (SELECT COALESCE(SUM(size), 0) AS size, MAX(created_at) AS lastPush FROM manifests WHERE repo_id = @repo) m`,
    ),
    tags: db.prepare<
      { repo: number; beforeTime: number; afterName: string; contains: string; limit: number },
      { name: string; digest: string; mediaType: string; updatedAt: number }
    >(
      `SELECT t.name, t.manifest_digest AS digest, m.media_type AS mediaType, t.updated_at AS updatedAt
         FROM tags t JOIN manifests m ON m.repo_id = t.repo_id AND m.digest = t.manifest_digest
        WHERE t.repo_id = @repo
          AND t.updated_at <= @beforeTime AND (t.updated_at < @beforeTime OR t.name > @afterName)
          AND (@contains = '' OR instr(t.name, @contains) > 0)
        ORDER BY t.updated_at DESC, t.name LIMIT @limit`,
    ),
    // The manifest, what it references and, for an index, what its children reference: each
    // blob once. CROSS JOIN keeps SQLite from starting at the children (every reference of
    // the repository) instead of at the index.
    imageSize: db.prepare<{ repository: string; digest: string }, { size: number }>(
      `SELECT COALESCE(SUM(size), 0) AS size FROM blobs WHERE digest IN (
         SELECT @digest
         UNION
         SELECT x.child_digest FROM manifest_references x
          WHERE x.repo_id = (SELECT id FROM repositories WHERE name = @repository) AND x.manifest_digest = @digest
         UNION
         SELECT x.child_digest FROM manifest_references p
           CROSS JOIN manifest_references x ON x.repo_id = p.repo_id AND x.manifest_digest = p.child_digest
          WHERE p.repo_id = (SELECT id FROM repositories WHERE name = @repository) AND p.manifest_digest = @digest AND p.kind = 'manifest')`,
    ),
    tagsOf: db.prepare<[string, string], { name: string }>(
      `SELECT t.name FROM tags t JOIN repositories r ON r.id = t.repo_id
        WHERE r.name = ? AND t.manifest_digest = ? ORDER BY t.name`,
    ),
    holders: db.prepare<[string], { name: string }>(
      'SELECT r.name FROM repository_blobs rb JOIN repositories r ON r.id = rb.repo_id WHERE rb.digest = ? ORDER BY r.name',
    ),
    lastGcRun: db.prepare<[], { at: number | null; freedBytes: number | null }>('SELECT last_run_at AS at, last_freed AS freedBytes FROM gc_state WHERE id = 1'),
    clearGroups: db.prepare('DELETE FROM user_groups WHERE user_name = ?'),
  };
}
