// The webhook event queue in SQLite (table event_queue, migrations/003_events.sql):
// events are written when a request finishes and deleted once delivered, so a restart
// loses none. Each endpoint has its own rows and is delivered in `seq` order.

import type { Db } from './db.js';

import type { QueuedEvent } from './ports.js';
export type { QueuedEvent };

export class EventQueue {
  private readonly insert;
  private readonly endpointsStmt;
  private readonly headStmt;
  private readonly deleteStmt;
  private readonly failStmt;
  private readonly countStmt;
  private readonly nextDueStmt;

  constructor(private readonly db: Db) {
    this.insert = db.prepare('INSERT INTO event_queue (endpoint, event_id, payload, next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?)');
    this.endpointsStmt = db.prepare('SELECT DISTINCT endpoint FROM event_queue');
    this.headStmt = db.prepare(
      'SELECT seq, event_id AS eventId, payload, attempts, next_attempt_at AS nextAttemptAt FROM event_queue WHERE endpoint = ? ORDER BY seq LIMIT ?',
    );
    this.deleteStmt = db.prepare('DELETE FROM event_queue WHERE seq = ?');
    this.failStmt = db.prepare('UPDATE event_queue SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? WHERE seq = ?');
    this.countStmt = db.prepare('SELECT count(*) AS n FROM event_queue');
    this.nextDueStmt = db.prepare('SELECT min(next_attempt_at) AS at FROM event_queue');
  }

  /** Queues one event for each of `endpoints`, in one transaction. */
  enqueue(endpoints: string[], eventId: string, payload: string, now = Date.now()): void {
    if (endpoints.length === 0) return;
    this.db.transaction(() => {
      for (const endpoint of endpoints) this.insert.run(endpoint, eventId, payload, now, now);
    })();
  }

  endpoints(): string[] {
    return (this.endpointsStmt.all() as { endpoint: string }[]).map((r) => r.endpoint);
  }

  /** The oldest `limit` events of an endpoint, in order. */
  head(endpoint: string, limit: number): QueuedEvent[] {
    return this.headStmt.all(endpoint, limit) as QueuedEvent[];
  }

  remove(seqs: number[]): void {
    this.db.transaction(() => {
      for (const seq of seqs) this.deleteStmt.run(seq);
    })();
  }

  /** Records a failed delivery of these events and when to try them again. */
  failed(seqs: number[], nextAttemptAt: number, error: string): void {
    this.db.transaction(() => {
      for (const seq of seqs) this.failStmt.run(nextAttemptAt, error.slice(0, 500), seq);
    })();
  }

  /** Deletes the events of endpoints no longer configured; returns how many. */
  dropEndpointsExcept(names: string[]): number {
    const placeholders = names.map(() => '?').join(', ');
    const where = names.length ? `WHERE endpoint NOT IN (${placeholders})` : '';
    return this.db.prepare(`DELETE FROM event_queue ${where}`).run(...names).changes;
  }

  count(): number {
    return (this.countStmt.get() as { n: number }).n;
  }

  /** When the earliest queued event may be tried, or undefined when the queue is empty. */
  nextDue(): number | undefined {
    return (this.nextDueStmt.get() as { at: number | null }).at ?? undefined;
  }
}
