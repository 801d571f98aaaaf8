-- Storage ports (issue 12): state that several processes share, kept as data.

-- Named leases: the GC runner, the maintenance scheduler, webhook delivery. A holder
-- renews its lease while it works; one that dies stops renewing and the lease expires.
CREATE TABLE leases (
  name   TEXT PRIMARY KEY,
  holder TEXT NOT NULL,
  until  INTEGER NOT NULL
) WITHOUT ROWID;

-- Blobs whose rows a collection deleted and whose objects it is deleting now. A push
-- of the same digest waits while the mark's runner still holds the 'gc' lease.
CREATE TABLE gc_marks (
  digest    TEXT PRIMARY KEY,
  runner    TEXT NOT NULL,
  marked_at INTEGER NOT NULL
) WITHOUT ROWID;

-- Upload sessions: which request of which process writes now (a lease), and the
-- running hash's state where the runtime can export it.
ALTER TABLE uploads ADD COLUMN lease_holder TEXT;
ALTER TABLE uploads ADD COLUMN lease_until INTEGER NOT NULL DEFAULT 0;
ALTER TABLE uploads ADD COLUMN hash_state TEXT;

-- The collection's running flag moved to the 'gc' lease.
UPDATE gc_state SET running_since = NULL, runner = NULL;
