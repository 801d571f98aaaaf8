// The SQL of the pull-through cache (src/proxy): last-pull times of cached manifests,
// a cache's size, and eviction of its least recently pulled images. A cache is every
// repository under one prefix (`docker.io/...`).

import type { Db } from './db.js';

export interface CachedImage {
  repository: string;
  digest: string;
  /** Last pull, or the time it was cached when never pulled since. */
  pulled_at: number;
}

/** Repositories under `@prefix/`. */
const UNDER_PREFIX = `substr(r.name, 1, length(@prefix) + 1) = @prefix || '/'`;

export class ProxyStore {
  private readonly s;

  constructor(private readonly db: Db) {
    this.s = {
      touch: db.prepare(
        `INSERT INTO proxy_pulls (repo_id, digest, pulled_at)
         SELECT m.repo_id, m.digest, @at FROM manifests m JOIN repositories r ON r.id = m.repo_id WHERE r.name = @repository AND m.digest = @digest
         ON CONFLICT(repo_id, digest) DO UPDATE SET pulled_at = MAX(pulled_at, excluded.pulled_at)`,
      ),
      // Blobs and manifests the cache's repositories hold, each counted once.
      size: db.prepare<{ prefix: string }, { bytes: number }>(
        `SELECT COALESCE(SUM(b.size), 0) AS bytes FROM blobs b WHERE b.digest IN (
           SELECT rb.digest FROM repository_blobs rb JOIN repositories r ON r.id = rb.repo_id WHERE ${UNDER_PREFIX}
           UNION SELECT m.digest FROM manifests m JOIN repositories r ON r.id = m.repo_id WHERE ${UNDER_PREFIX})`,
      ),
      // Images: manifests no index of their repository holds, least recently pulled first.
      images: db.prepare<{ prefix: string }, CachedImage>(
        `SELECT r.name AS repository, m.digest, COALESCE(p.pulled_at, m.created_at) AS pulled_at
           FROM manifests m JOIN repositories r ON r.id = m.repo_id
           LEFT JOIN proxy_pulls p ON p.repo_id = m.repo_id AND p.digest = m.digest
          WHERE ${UNDER_PREFIX}
            AND NOT EXISTS (SELECT 1 FROM manifest_references x WHERE x.repo_id = m.repo_id AND x.child_digest = m.digest AND x.kind = 'manifest')
          ORDER BY pulled_at, r.name, m.digest`,
      ),
      children: db.prepare<{ repository: string; digest: string }, { digest: string }>(
        `SELECT x.child_digest AS digest FROM manifest_references x JOIN repositories r ON r.id = x.repo_id
          WHERE r.name = @repository AND x.manifest_digest = @digest AND x.kind = 'manifest'`,
      ),
      deleteManifest: db.prepare(
        `DELETE FROM manifests WHERE repo_id = (SELECT id FROM repositories WHERE name = @repository) AND digest = @digest
           AND NOT EXISTS (SELECT 1 FROM manifest_references x WHERE x.repo_id = manifests.repo_id AND x.child_digest = manifests.digest AND x.kind = 'manifest')`,
      ),
      // Links that no manifest left in the repository references.
      unlinkUnreferenced: db.prepare(
        `DELETE FROM repository_blobs AS rb WHERE rb.repo_id = (SELECT id FROM repositories WHERE name = @repository)
           AND NOT EXISTS (SELECT 1 FROM manifest_references x WHERE x.repo_id = rb.repo_id AND x.child_digest = rb.digest)`,
      ),
    };
  }

  /** Records pulls: (repository, digest) -> time. */
  touch(pulls: Iterable<[string, string, number]>): void {
    this.db.transaction(() => {
      for (const [repository, digest, at] of pulls) this.s.touch.run({ repository, digest, at });
    })();
  }

  size(prefix: string): number {
    return this.s.size.get({ prefix })!.bytes;
  }

  /** The cache's images, least recently pulled first. */
  images(prefix: string): CachedImage[] {
    return this.s.images.all({ prefix });
  }

  /**
   * Evicts an image: the manifest with its tags and referrers, the child manifests of an
   * index that nothing else holds, and the repository's links to blobs no manifest left
   * there uses. Blobs other repositories link stay; files go at the next collection.
   */
  evict(repository: string, digest: string): void {
    this.db.transaction(() => {
      const doomed = [digest];
      for (let i = 0; i < doomed.length; i++) {
        const d = doomed[i]!;
        const children = this.s.children.all({ repository, digest: d }).map((c) => c.digest);
        if (this.s.deleteManifest.run({ repository, digest: d }).changes > 0) doomed.push(...children);
      }
      this.s.unlinkUnreferenced.run({ repository });
    }).immediate();
  }
}
