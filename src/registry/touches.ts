// Records that clients touched blobs (HEAD, GET), for garbage collection: a blob a
// client has just seen must not be collected before the manifest that uses it arrives.
// Touches are batched in memory and written once a second; while a collection runs
// (any process may run it) they are written before the request is answered. A
// collection waits two batch intervals after it starts before deciding anything, so no
// touch escapes it. A write that fails (a busy or full database) keeps its touches for
// the next one: a touch is never lost, and never crashes anything.

import type { MetadataStore } from '../../storage/ports.js';

export const TOUCH_INTERVAL_MS = 1000;

export class TouchRecorder {
  private pending = new Map<string, number>();
  private collecting = false;
  private flushing: Promise<void> | undefined;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly meta: MetadataStore,
    intervalMs: number,
    private readonly onError: (err: unknown) => void,
  ) {
    this.timer = setInterval(() => void this.flush(), intervalMs);
    this.timer.unref();
    void this.flush();
  }

  /** Records a touch; while a collection runs, resolves once it is written (or failed and kept). */
  async touch(digest: string): Promise<void> {
    this.pending.set(digest, Date.now());
    if (this.collecting) await this.flush();
  }

  /** Writes the pending touches and looks whether a collection runs. Never rejects. */
  flush(): Promise<void> {
    // One write at a time; a flush asked for meanwhile runs right after it.
    const run = (this.flushing ?? Promise.resolve()).then(() => this.write());
    this.flushing = run.finally(() => {
      if (this.flushing === guarded) this.flushing = undefined;
    });
    const guarded = this.flushing;
    return run;
  }

  private async write(): Promise<void> {
    const batch = this.pending;
    if (batch.size > 0) {
      this.pending = new Map();
      try {
        await this.meta.touchBlobs(batch);
      } catch (err) {
        // Kept for the next flush; touches made since are newer and win.
        for (const [digest, at] of batch) if (!this.pending.has(digest)) this.pending.set(digest, at);
        this.onError(err);
      }
    }
    try {
      this.collecting = await this.meta.gcRunning();
    } catch (err) {
      this.onError(err);
    }
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
  }
}
