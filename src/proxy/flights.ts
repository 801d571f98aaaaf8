// One piece of work per key at a time: callers that ask while it runs share its result
// (ten clients pulling the same uncached blob cause one upstream fetch).

export class Flights<T> {
  private readonly running = new Map<string, Promise<T>>();

  /** The running work for `key`, if any. */
  get(key: string): Promise<T> | undefined {
    return this.running.get(key);
  }

  /** Runs `work` unless work for `key` is running, whose promise is returned instead. */
  run(key: string, work: () => Promise<T>): Promise<T> {
    const running = this.running.get(key);
    if (running) return running;
    const p = work().finally(() => this.running.delete(key));
    this.running.set(key, p);
    return p;
  }
}
