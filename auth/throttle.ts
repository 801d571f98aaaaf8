// Failed-login throttling per client address: after `maxFailures` failures within
// `windowSeconds`, every login from that address is refused (429) until the window has
// passed, even with the right password, so a password cannot be guessed at speed.

export interface ThrottleOptions {
  maxFailures: number;
  windowSeconds: number;
}

export const DEFAULT_THROTTLE: ThrottleOptions = { maxFailures: 10, windowSeconds: 60 };

interface Entry {
  failures: number;
  windowStart: number;
  blockedUntil: number;
}

/** Entries beyond this are pruned of expired ones, so a flood of addresses cannot grow memory without end. */
const PRUNE_ABOVE = 10_000;

export class LoginThrottle {
  private readonly entries = new Map<string, Entry>();
  private readonly windowMs: number;

  constructor(
    private readonly options: ThrottleOptions = DEFAULT_THROTTLE,
    private readonly now: () => number = Date.now,
  ) {
    this.windowMs = options.windowSeconds * 1000;
  }

  /** Seconds the address must wait before it may try again; 0 when it may try now. */
  retryAfter(address: string): number {
    const entry = this.entries.get(address);
    if (!entry) return 0;
    const wait = entry.blockedUntil - this.now();
    return wait > 0 ? Math.ceil(wait / 1000) : 0;
  }

  failed(address: string): void {
    const now = this.now();
    let entry = this.entries.get(address);
    if (!entry || now - entry.windowStart > this.windowMs) {
      if (this.entries.size >= PRUNE_ABOVE) this.prune(now);
      entry = { failures: 0, windowStart: now, blockedUntil: 0 };
      this.entries.set(address, entry);
    }
    entry.failures++;
    if (entry.failures >= this.options.maxFailures) entry.blockedUntil = now + this.windowMs;
  }

  succeeded(address: string): void {
    this.entries.delete(address);
  }

  private prune(now: number): void {
    for (const [address, entry] of this.entries) {
      if (now - entry.windowStart > this.windowMs && entry.blockedUntil <= now) this.entries.delete(address);
    }
  }
}
