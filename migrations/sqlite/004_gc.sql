-- Garbage collection state shared by every process on this data directory: a running
-- collection sets running_since, and servers then record blob touches (HEAD, GET)
-- at once instead of in their one-second batches, so a blob a client just saw is kept.
CREATE TABLE gc_state (
  id            INTEGER PRIMARY KEY CHECK (id = 1),
  running_since INTEGER,
  runner        TEXT,
  last_run_at   INTEGER,
  last_freed    INTEGER
);
INSERT INTO gc_state (id) VALUES (1);

CREATE INDEX blobs_touched ON blobs(touched_at);
CREATE INDEX manifest_references_repo_child ON manifest_references(repo_id, child_digest);
