-- The registry's metadata. Blob and manifest bytes live in the content-addressed
-- store on disk; these tables say which repository may serve what, and name it.

CREATE TABLE repositories (
  id         INTEGER PRIMARY KEY,
  name       TEXT NOT NULL UNIQUE,
  created_at INTEGER NOT NULL
);

-- Every blob file in <data>/blobs (layers, configs and manifest bytes alike).
CREATE TABLE blobs (
  digest     TEXT PRIMARY KEY,
  size       INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  -- last time a client checked, mounted or referenced it: garbage collection keeps
  -- blobs touched within its grace period.
  touched_at INTEGER NOT NULL
) WITHOUT ROWID;

-- Which blobs a repository may serve (the reference registry's "layer links").
CREATE TABLE repository_blobs (
  repo_id    INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
  digest     TEXT NOT NULL REFERENCES blobs(digest),
  created_at INTEGER NOT NULL,
  PRIMARY KEY (repo_id, digest)
) WITHOUT ROWID;
CREATE INDEX repository_blobs_digest ON repository_blobs(digest);

CREATE TABLE manifests (
  repo_id        INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
  digest         TEXT NOT NULL REFERENCES blobs(digest),
  media_type     TEXT NOT NULL,
  size           INTEGER NOT NULL,
  artifact_type  TEXT,
  subject_digest TEXT,
  annotations    TEXT,
  created_at     INTEGER NOT NULL,
  PRIMARY KEY (repo_id, digest)
) WITHOUT ROWID;
CREATE INDEX manifests_subject ON manifests(repo_id, subject_digest) WHERE subject_digest IS NOT NULL;
CREATE INDEX manifests_digest ON manifests(digest);

-- What each manifest references: its config and layers (blobs) or child manifests.
CREATE TABLE manifest_references (
  repo_id         INTEGER NOT NULL,
  manifest_digest TEXT NOT NULL,
  child_digest    TEXT NOT NULL,
  kind            TEXT NOT NULL CHECK (kind IN ('config', 'layer', 'manifest', 'blob')),
  PRIMARY KEY (repo_id, manifest_digest, child_digest, kind),
  FOREIGN KEY (repo_id, manifest_digest) REFERENCES manifests(repo_id, digest) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX manifest_references_child ON manifest_references(child_digest);

CREATE TABLE tags (
  repo_id         INTEGER NOT NULL,
  name            TEXT NOT NULL,
  manifest_digest TEXT NOT NULL,
  updated_at      INTEGER NOT NULL,
  PRIMARY KEY (repo_id, name),
  FOREIGN KEY (repo_id, manifest_digest) REFERENCES manifests(repo_id, digest) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX tags_manifest ON tags(repo_id, manifest_digest);

-- Upload sessions; the bytes are in <data>/uploads/<uuid>. `offset` is the length the
-- client was told was received: the file is cut back to it when a session resumes.
CREATE TABLE uploads (
  uuid       TEXT PRIMARY KEY,
  repo_id    INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
  "offset"   INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE INDEX uploads_updated ON uploads(updated_at);
