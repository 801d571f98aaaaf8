-- The registry's metadata in PostgreSQL, for replicas that share one database: the
-- same tables as migrations/sqlite/001-005, in one file. Times are milliseconds since
-- the epoch (BIGINT) unless a column says otherwise; sizes are BIGINT.

CREATE TABLE repositories (
  id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name       TEXT NOT NULL UNIQUE,
  created_at BIGINT NOT NULL
);

-- Every blob object in the blob store (layers, configs and manifest bytes alike).
CREATE TABLE blobs (
  digest     TEXT PRIMARY KEY,
  size       BIGINT NOT NULL,
  created_at BIGINT NOT NULL,
  -- last time a client checked, mounted or referenced it: garbage collection keeps
  -- blobs touched within its grace period.
  touched_at BIGINT NOT NULL
);
CREATE INDEX blobs_touched ON blobs(touched_at);

-- Which blobs a repository may serve (the reference registry's "layer links").
CREATE TABLE repository_blobs (
  repo_id    BIGINT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
  digest     TEXT NOT NULL REFERENCES blobs(digest),
  created_at BIGINT NOT NULL,
  PRIMARY KEY (repo_id, digest)
);
CREATE INDEX repository_blobs_digest ON repository_blobs(digest);

CREATE TABLE manifests (
  repo_id        BIGINT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
  digest         TEXT NOT NULL REFERENCES blobs(digest),
  media_type     TEXT NOT NULL,
  size           BIGINT NOT NULL,
  artifact_type  TEXT,
  subject_digest TEXT,
  annotations    TEXT,
  created_at     BIGINT NOT NULL,
  PRIMARY KEY (repo_id, digest)
);
CREATE INDEX manifests_subject ON manifests(repo_id, subject_digest) WHERE subject_digest IS NOT NULL;
CREATE INDEX manifests_digest ON manifests(digest);

-- What each manifest references: its config and layers (blobs) or child manifests.
CREATE TABLE manifest_references (
  repo_id         BIGINT NOT NULL,
  manifest_digest TEXT NOT NULL,
  child_digest    TEXT NOT NULL,
  kind            TEXT NOT NULL CHECK (kind IN ('config', 'layer', 'manifest', 'blob')),
  PRIMARY KEY (repo_id, manifest_digest, child_digest, kind),
  FOREIGN KEY (repo_id, manifest_digest) REFERENCES manifests(repo_id, digest) ON DELETE CASCADE
);
CREATE INDEX manifest_references_child ON manifest_references(child_digest);
CREATE INDEX manifest_references_repo_child ON manifest_references(repo_id, child_digest);

CREATE TABLE tags (
  repo_id         BIGINT NOT NULL,
  name            TEXT NOT NULL,
  manifest_digest TEXT NOT NULL,
  updated_at      BIGINT NOT NULL,
  PRIMARY KEY (repo_id, name),
  FOREIGN KEY (repo_id, manifest_digest) REFERENCES manifests(repo_id, digest) ON DELETE CASCADE
);
CREATE INDEX tags_manifest ON tags(repo_id, manifest_digest);

-- Upload sessions; the bytes are in the blob store under the same id. `offset` is the
-- length acknowledged to the client. Any replica may write the next request: the lease
-- says which one writes now, and hash_state carries the running hash where the runtime
-- can export it (else the next writer re-hashes the received prefix).
CREATE TABLE uploads (
  uuid         TEXT PRIMARY KEY,
  repo_id      BIGINT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
  "offset"     BIGINT NOT NULL DEFAULT 0,
  created_at   BIGINT NOT NULL,
  updated_at   BIGINT NOT NULL,
  lease_holder TEXT,
  lease_until  BIGINT NOT NULL DEFAULT 0,
  hash_state   TEXT
);
CREATE INDEX uploads_updated ON uploads(updated_at);

-- Registry users. Passwords are only stored as scrypt hashes. password_changed_at is
-- in seconds (a token's iat unit): refresh tokens issued before it are refused.
CREATE TABLE users (
  name                TEXT PRIMARY KEY,
  password_hash       TEXT NOT NULL,
  admin               BOOLEAN NOT NULL DEFAULT false,
  created_at          BIGINT NOT NULL,
  password_changed_at BIGINT NOT NULL
);

-- Groups are named by access rules ("groups: [ci]"); a user may be in several.
CREATE TABLE user_groups (
  user_name  TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
  group_name TEXT NOT NULL,
  PRIMARY KEY (user_name, group_name)
);

-- Webhook events waiting for delivery, one row per event and endpoint; deleted once
-- the endpoint answered 2xx (or gave up on). `seq` keeps each endpoint's order.
CREATE TABLE event_queue (
  seq             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  endpoint        TEXT NOT NULL,
  event_id        TEXT NOT NULL,
  payload         TEXT NOT NULL,
  attempts        INTEGER NOT NULL DEFAULT 0,
  next_attempt_at BIGINT NOT NULL,
  created_at      BIGINT NOT NULL,
  last_error      TEXT
);
CREATE INDEX event_queue_endpoint ON event_queue(endpoint, seq);

-- The last finished collection, for status and metrics.
CREATE TABLE gc_state (
  id          INTEGER PRIMARY KEY CHECK (id = 1),
  last_run_at BIGINT,
  last_freed  BIGINT
);
INSERT INTO gc_state (id) VALUES (1);

-- Named leases: the GC runner, the maintenance scheduler, webhook delivery. A holder
-- renews its lease while it works; one that dies stops renewing and the lease expires.
CREATE TABLE leases (
  name   TEXT PRIMARY KEY,
  holder TEXT NOT NULL,
  until  BIGINT NOT NULL
);

-- Blobs whose rows a collection deleted and whose objects it is deleting now. A push
-- of the same digest waits while the mark's runner still holds the 'gc' lease.
CREATE TABLE gc_marks (
  digest    TEXT PRIMARY KEY,
  runner    TEXT NOT NULL,
  marked_at BIGINT NOT NULL
);
