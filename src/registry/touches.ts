// Records that clients touched blobs (HEAD, GET), for garbage collection: a blob a
// client has just seen must not be collected before the manifest that uses it arrives.
// Touches are batched in memory and written once a second; while a collection runs
// (any process may run it) they are written at once. A collection waits two batch
// intervals after it starts before deciding anything, so no touch escapes it.

import type { GcStore } from '../../storage/gc.js';

export const TOUCH_INTERVAL_MS = 1000;

export class TouchRecorder {
  private pending = new Map<string, number>();
  private collecting = false;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly store: GcStore,
    intervalMs = TOUCH_INTERVAL_MS,
  ) {
    this.collecting = store.isRunning();
    this.timer = setInterval(() => this.flush(), intervalMs);
    this.timer.unref();
  }

  touch(digest: string): void {
    const now = Date.now();
    if (this.collecting) this.store.touch([[digest, now]]);
    else this.pending.set(digest, now);
  }

  flush(): void {
    if (this.pending.size > 0) {
      const batch = this.pending;
      this.pending = new Map();
      this.store.touch(batch);
    }
    this.collecting = this.store.isRunning();
  }

  close(): void {
    clearInterval(this.timer);
    this.flush();
  }
}
