// Lease holders: who holds a lease (the GC runner, the maintenance scheduler, webhook
// delivery, an upload's writer), named so that a holder on this machine whose process
// is gone can be told apart from one that is only slow.

import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';

/** A new holder name for this process: `host:pid:random`. */
export function newHolder(): string {
  return `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
}

/**
 * Whether a holder's process is certainly gone: it ran on this machine and its pid no
 * longer exists. Anything else (another machine, a pid that exists) waits for the
 * lease to expire.
 */
export function holderIsDead(holder: string): boolean {
  const [host, pid] = holder.split(':');
  const n = Number(pid);
  if (host !== hostname() || !Number.isSafeInteger(n) || n <= 0 || n === process.pid) return false;
  try {
    process.kill(n, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}
