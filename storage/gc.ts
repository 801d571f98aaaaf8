// The SQL of garbage collection, retention and upload expiry. Every deletion re-checks
// its conditions inside its own write transaction, so a push, mount or HEAD that
// happens while a collection runs either lands before it (and the row is kept) or
// after it (and finds the row gone, failing cleanly).

import type { Db } from './db.js';

export interface RepoManifest {
  repo_id: number;
  repository: string;
  digest: string;
}

export interface TagRow {
  repository: string;
  name: string;
  manifest_digest: string;
  updated_at: number;
}

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

export class GcStore {
  private readonly s;

  constructor(readonly db: Db) {
    this.s = {
      begin: db.prepare(
        'UPDATE gc_state SET running_since = @now, runner = @runner WHERE id = 1 AND (running_since IS NULL OR running_since < @stale)',
      ),
      end: db.prepare('UPDATE gc_state SET running_since = NULL, runner = NULL, last_run_at = @now, last_freed = @freed WHERE id = 1 AND runner = @runner'),
      running: db.prepare<[], { running_since: number | null }>('SELECT running_since FROM gc_state WHERE id = 1'),
      touch: db.prepare('UPDATE blobs SET touched_at = MAX(touched_at, ?) WHERE digest = ?'),
      unusedManifests: db.prepare<{ cutoff: number }, RepoManifest>(
        `SELECT m.repo_id, r.name AS repository, m.digest FROM manifests m JOIN repositories r ON r.id = m.repo_id WHERE ${UNUSED_MANIFEST}`,
      ),
      deleteUnusedManifest: db.prepare(`DELETE FROM manifests AS m WHERE m.repo_id = @repo AND m.digest = @digest AND ${UNUSED_MANIFEST}`),
      unusedLinks: db.prepare<{ cutoff: number }, { repo_id: number; digest: string }>(
        `SELECT rb.repo_id, rb.digest FROM repository_blobs rb WHERE ${UNUSED_LINK}`,
      ),
      deleteUnusedLink: db.prepare(`DELETE FROM repository_blobs AS rb WHERE rb.repo_id = @repo AND rb.digest = @digest AND ${UNUSED_LINK}`),
      unusedBlobs: db.prepare<{ cutoff: number }, { digest: string; size: number }>(`SELECT b.digest, b.size FROM blobs b WHERE ${UNUSED_BLOB}`),
      deleteUnusedBlob: db.prepare(`DELETE FROM blobs AS b WHERE b.digest = @digest AND ${UNUSED_BLOB}`),
      staleUploads: db.prepare<[number], { uuid: string }>('SELECT uuid FROM uploads WHERE updated_at < ?'),
      uploadExists: db.prepare<[string], { one: number }>('SELECT 1 AS one FROM uploads WHERE uuid = ?'),
      deleteStaleUpload: db.prepare('DELETE FROM uploads WHERE uuid = ? AND updated_at < ?'),
      tags: db.prepare<[], TagRow>(
        'SELECT r.name AS repository, t.name, t.manifest_digest, t.updated_at FROM tags t JOIN repositories r ON r.id = t.repo_id ORDER BY r.name, t.updated_at DESC, t.name',
      ),
      manifestUnheld: db.prepare<[string, string], { one: number }>(
        `SELECT 1 AS one FROM manifests m JOIN repositories r ON r.id = m.repo_id
          WHERE r.name = ? AND m.digest = ?
            AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repo_id = m.repo_id AND t.manifest_digest = m.digest)
            AND NOT EXISTS (SELECT 1 FROM manifest_references x WHERE x.repo_id = m.repo_id AND x.child_digest = m.digest AND x.kind = 'manifest')`,
      ),
      deleteTag: db.prepare(
        'DELETE FROM tags WHERE repo_id = (SELECT id FROM repositories WHERE name = ?) AND name = ? AND manifest_digest = ?',
      ),
    };
  }

  /** Marks a collection as running unless another (not older than `staleBefore`) is. */
  begin(runner: string, now: number, staleBefore: number): boolean {
    return this.s.begin.run({ now, runner, stale: staleBefore }).changes === 1;
  }

  end(runner: string, freed: number): void {
    this.s.end.run({ now: Date.now(), freed, runner });
  }

  isRunning(): boolean {
    return this.s.running.get()?.running_since != null;
  }

  /** Records blob touches (time by digest) in one transaction. */
  touch(touches: Iterable<[string, number]>): void {
    this.db.transaction(() => {
      for (const [digest, at] of touches) this.s.touch.run(at, digest);
    })();
  }

  unusedManifests(cutoff: number): RepoManifest[] {
    return this.s.unusedManifests.all({ cutoff });
  }

  deleteUnusedManifest(repo: number, digest: string, cutoff: number): boolean {
    return this.s.deleteUnusedManifest.run({ repo, digest, cutoff }).changes > 0;
  }

  unusedLinks(cutoff: number): { repo_id: number; digest: string }[] {
    return this.s.unusedLinks.all({ cutoff });
  }

  deleteUnusedLink(repo: number, digest: string, cutoff: number): boolean {
    return this.s.deleteUnusedLink.run({ repo, digest, cutoff }).changes > 0;
  }

  unusedBlobs(cutoff: number): { digest: string; size: number }[] {
    return this.s.unusedBlobs.all({ cutoff });
  }

  deleteUnusedBlob(digest: string, cutoff: number): boolean {
    return this.s.deleteUnusedBlob.run({ digest, cutoff }).changes > 0;
  }

  staleUploads(before: number): string[] {
    return this.s.staleUploads.all(before).map((r) => r.uuid);
  }

  uploadExists(uuid: string): boolean {
    return this.s.uploadExists.get(uuid) !== undefined;
  }

  deleteStaleUpload(uuid: string, before: number): boolean {
    return this.s.deleteStaleUpload.run(uuid, before).changes > 0;
  }

  /** Every tag, newest first within each repository. */
  tags(): TagRow[] {
    return this.s.tags.all();
  }

  /** Whether a manifest has no tag and no parent index left in its repository. */
  manifestUnheld(repository: string, digest: string): boolean {
    return this.s.manifestUnheld.get(repository, digest) !== undefined;
  }

  /** Deletes a tag if it still points where retention saw it. */
  deleteTag(repository: string, tag: string, digest: string): boolean {
    return this.s.deleteTag.run(repository, tag, digest).changes > 0;
  }
}
