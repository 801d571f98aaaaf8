-- Webhook events waiting for delivery, one row per event and endpoint, so they survive
-- a restart and each endpoint retries on its own. A row is deleted once its endpoint
-- answered 2xx (or after events.maxAttempts failures). `seq` keeps each endpoint's
-- events in the order they happened.

CREATE TABLE event_queue (
  seq             INTEGER PRIMARY KEY AUTOINCREMENT,
  endpoint        TEXT NOT NULL,
  event_id        TEXT NOT NULL,
  -- one event of the notification envelope, as JSON
  payload         TEXT NOT NULL,
  attempts        INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER NOT NULL,
  created_at      INTEGER NOT NULL,
  last_error      TEXT
);
CREATE INDEX event_queue_endpoint ON event_queue(endpoint, seq);
