-- Registry users for authentication. Passwords are only stored as scrypt hashes.
-- password_changed_at (seconds) invalidates refresh tokens issued before a change.

CREATE TABLE users (
  name                TEXT PRIMARY KEY,
  password_hash       TEXT NOT NULL,
  admin               INTEGER NOT NULL DEFAULT 0 CHECK (admin IN (0, 1)),
  created_at          INTEGER NOT NULL,
  password_changed_at INTEGER NOT NULL
) WITHOUT ROWID;

-- Groups are named by access rules ("groups: [ci]"); a user may be in several.
CREATE TABLE user_groups (
  user_name  TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
  group_name TEXT NOT NULL,
  PRIMARY KEY (user_name, group_name)
) WITHOUT ROWID;
