// The webhook event outbox: events queued by endpoint, delivered in order by whichever
// process holds the 'events' lease (src/server/events.ts delivers them).

import type { MetadataStore, OutboxEvent, QueuedEvent } from '../../storage/ports.js';

export type { OutboxEvent, QueuedEvent };

export class EventOutbox {
  constructor(private readonly meta: MetadataStore) {}

  enqueue(events: OutboxEvent[]): Promise<void> {
    return this.meta.enqueueEvents(events);
  }

  endpoints(): Promise<string[]> {
    return this.meta.eventEndpoints();
  }

  /** The oldest `limit` events of an endpoint, in order. */
  head(endpoint: string, limit: number): Promise<QueuedEvent[]> {
    return this.meta.eventHead(endpoint, limit);
  }

  remove(seqs: number[]): Promise<void> {
    return this.meta.removeEvents(seqs);
  }

  /** Records a failed delivery of these events and when to try them again. */
  failed(seqs: number[], nextAttemptAt: number, error: string): Promise<void> {
    return this.meta.failEvents(seqs, nextAttemptAt, error);
  }

  /** Deletes the events of endpoints no longer configured; resolves to how many. */
  dropEndpointsExcept(names: string[]): Promise<number> {
    return this.meta.dropEventsExcept(names);
  }

  count(): Promise<number> {
    return this.meta.queuedEvents();
  }

  /** Takes or renews a named lease (delivery, maintenance): one process at a time does the work. */
  lease(name: string, holder: string, ttlMs: number): Promise<boolean> {
    return this.meta.acquireLease(name, holder, ttlMs);
  }

  releaseLease(name: string, holder: string): Promise<void> {
    return this.meta.releaseLease(name, holder);
  }
}
