// What readiness probes ask of the storage: does the database answer, does the store
// take a write, how much room is left.

import type { BlobStore, MetadataStore } from '../../storage/ports.js';

export class HealthService {
  constructor(
    private readonly meta: MetadataStore,
    private readonly store: BlobStore,
  ) {}

  database(): Promise<void> {
    return this.meta.ping();
  }

  /** Rejects with the error's code (EROFS, ENOSPC...) when the store takes no writes. */
  writable(): Promise<void> {
    return this.store.probeWritable();
  }

  /** Free bytes for new data, or undefined when the store cannot tell (object stores). */
  freeBytes(): Promise<number | undefined> {
    return this.store.freeBytes();
  }
}
