-- Tags newest first, for browsing a repository (the web UI, storage/postgres/browse.ts):
-- a page of a repository with 10,000 tags is read from the index, never sorted whole.
-- As migrations/sqlite/007_browse.sql.
CREATE INDEX tags_updated ON tags(repo_id, updated_at DESC, name COLLATE "C");
