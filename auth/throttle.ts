// Failed-login throttling, per client address and per account. An attempt is counted
// when it starts, before its password is hashed, so a burst of concurrent guesses cannot
// all be evaluated before the first failure is recorded. Once `maxFailures` attempts of
// an address or an account are counted within `windowSeconds`, every login from that
// address or to that account is refused (429) until the window has passed, even with
// the right password, so a password cannot be guessed at speed from one address or from
// many. A successful login takes back its own attempt and clears only its account's
// count: logging in to one account does not buy guesses at another.

export interface ThrottleOptions {
  maxFailures: number;
  windowSeconds: number;
}

export const DEFAULT_THROTTLE: ThrottleOptions = { maxFailures: 10, windowSeconds: 60 };

interface Entry {
  /** Failed attempts plus attempts in progress. */
  attempts: number;
  windowStart: number;
  blockedUntil: number;
}

/** Entries beyond this are pruned of expired ones, and the oldest dropped, so a flood of addresses or names cannot grow memory without end. */
const MAX_ENTRIES = 50_000;

/** Longer names cannot be accounts (auth/accounts.ts allows 64 characters): cut so a huge name costs no memory. */
const ACCOUNT_KEY_LENGTH = 65;

/** An attempt that was let through: it counts as a failure unless `succeeded()` is called. */
export interface LoginAttempt {
  succeeded(): void;
}

export class LoginThrottle {
  private readonly entries = new Map<string, Entry>();
  private readonly windowMs: number;

  constructor(
    private readonly options: ThrottleOptions = DEFAULT_THROTTLE,
    private readonly now: () => number = Date.now,
  ) {
    this.windowMs = options.windowSeconds * 1000;
  }

  /**
   * Counts a login attempt to `account` from `address`. Returns the seconds to wait when
   * either is blocked (nothing is counted then), else the attempt to settle.
   */
  begin(address: string, account: string): number | LoginAttempt {
    const wait = this.retryAfter(address, account);
    if (wait > 0) return wait;
    const now = this.now();
    const keys = this.keys(address, account);
    const [addressEntry] = keys.map((k) => this.count(k, now)) as [Entry, Entry];
    let settled = false;
    return {
      succeeded: () => {
        if (settled) return;
        settled = true;
        this.entries.delete(keys[1]!);
        // The address's count keeps its failures; this attempt was not one.
        addressEntry.attempts = Math.max(0, addressEntry.attempts - 1);
        if (addressEntry.attempts < this.options.maxFailures) addressEntry.blockedUntil = 0;
      },
    };
  }

  /** Seconds before a login to `account` from `address` may be tried (0: now); counts nothing. */
  retryAfter(address: string, account: string): number {
    const now = this.now();
    return Math.ceil(Math.max(...this.keys(address, account).map((k) => this.waitMs(k, now))) / 1000);
  }

  private keys(address: string, account: string): [string, string] {
    return [`address ${address}`, `account ${account.slice(0, ACCOUNT_KEY_LENGTH)}`];
  }

  private waitMs(key: string, now: number): number {
    const entry = this.entries.get(key);
    return entry ? Math.max(0, entry.blockedUntil - now) : 0;
  }

  private count(key: string, now: number): Entry {
    let entry = this.entries.get(key);
    if (!entry || now - entry.windowStart > this.windowMs) {
      if (entry) this.entries.delete(key);
      else if (this.entries.size >= MAX_ENTRIES) this.prune(now);
      entry = { attempts: 0, windowStart: now, blockedUntil: 0 };
      this.entries.set(key, entry);
    }
    entry.attempts++;
    if (entry.attempts >= this.options.maxFailures) entry.blockedUntil = now + this.windowMs;
    return entry;
  }

  private prune(now: number): void {
    for (const [key, entry] of this.entries) {
      if (now - entry.windowStart > this.windowMs && entry.blockedUntil <= now) this.entries.delete(key);
    }
    // Still full within one window: forget the oldest tenth (Map keeps insertion order).
    let drop = this.entries.size >= MAX_ENTRIES ? MAX_ENTRIES / 10 : 0;
    for (const key of this.entries.keys()) {
      if (drop-- <= 0) break;
      this.entries.delete(key);
    }
  }
}
