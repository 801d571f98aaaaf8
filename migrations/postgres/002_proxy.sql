-- The pull-through cache (src/proxy): when each cached manifest was last pulled, so
-- maxBytes and idleFor evict the least recently pulled images first. A row goes with
-- its manifest (deleted, collected or evicted). As migrations/sqlite/005_proxy.sql.
CREATE TABLE proxy_pulls (
  repo_id   BIGINT NOT NULL,
  digest    TEXT NOT NULL,
  pulled_at BIGINT NOT NULL,
  PRIMARY KEY (repo_id, digest),
  FOREIGN KEY (repo_id, digest) REFERENCES manifests(repo_id, digest) ON DELETE CASCADE
);
CREATE INDEX proxy_pulls_pulled ON proxy_pulls(pulled_at);
