// The PostgreSQL queries behind the MetadataStore's browsing methods (the web UI); the
// same results as storage/sqlite/browse.ts. SUMs are cast back to bigint (the pool
// parses int8 as a number; a bare SUM of bigints would be numeric, a string).

export const BROWSE_SQL = {
  repoId: 'SELECT id FROM repositories WHERE name = $1',
  summary: `SELECT (SELECT COUNT(*) FROM tags WHERE repo_id = $1) AS tags,
                   ((SELECT COALESCE(SUM(b.size), 0) FROM repository_blobs rb JOIN blobs b ON b.digest = rb.digest WHERE rb.repo_id = $1) + m.size)::bigint AS bytes,
                   m.last_push AS "lastPush"
              FROM (SELECT COALESCE(SUM(size), 0) AS size, MAX(created_at) AS last_push FROM manifests WHERE repo_id = $1) m`,
  // $1 repo, $2 before time, $3 after name, $4 contains, $5 limit.
  tags: `SELECT t.name, t.manifest_digest AS digest, m.media_type AS "mediaType", t.updated_at AS "updatedAt"
           FROM tags t JOIN manifests m ON m.repo_id = t.repo_id AND m.digest = t.manifest_digest
          WHERE t.repo_id = $1
            AND t.updated_at <= $2 AND (t.updated_at < $2 OR t.name COLLATE "C" > $3)
            AND ($4 = '' OR strpos(t.name, $4) > 0)
          ORDER BY t.updated_at DESC, t.name COLLATE "C" LIMIT $5`,
  // $1 repository, $2 digest.
  imageSize: `WITH repo AS (SELECT id FROM repositories WHERE name = $1)
              SELECT COALESCE(SUM(size), 0)::bigint AS size FROM blobs WHERE digest IN (
                SELECT $2::text
                UNION
                SELECT x.child_digest FROM manifest_references x, repo WHERE x.repo_id = repo.id AND x.manifest_digest = $2
                UNION
                SELECT x.child_digest FROM repo, manifest_references p
                  JOIN manifest_references x ON x.repo_id = p.repo_id AND x.manifest_digest = p.child_digest
                 WHERE p.repo_id = repo.id AND p.manifest_digest = $2 AND p.kind = 'manifest')`,
  tagsOf: `SELECT t.name FROM tags t JOIN repositories r ON r.id = t.repo_id
            WHERE r.name = $1 AND t.manifest_digest = $2 ORDER BY t.name COLLATE "C"`,
  holders: `SELECT r.name FROM repository_blobs rb JOIN repositories r ON r.id = rb.repo_id
             WHERE rb.digest = $1 ORDER BY r.name COLLATE "C"`,
  lastGcRun: 'SELECT last_run_at AS at, last_freed AS "freedBytes" FROM gc_state WHERE id = 1',
} as const;
