// A small pool of 1 MiB buffers shared by blob uploads and downloads.
//
// Socket chunks and per-transfer buffers are memory outside V8's heap, which V8 counts
// as "external memory": every 64 MiB of it allocated starts a garbage collection, and
// buffers that live across two of them reach the old generation, where only full
// mark-compacts free them. A 1 GiB push allocated that way ran about 60 mark-compacts
// (about 0.5 s of the main thread). Reusing the same few buffers keeps external memory
// flat, so collections stay rare and cheap.

export const BUFFER_SIZE = 1 << 20;

/** Buffers kept for reuse; more than this many at once are left to the collector. */
const KEEP = 4;

const free: Buffer[] = [];

export function takeBuffer(): Buffer {
  return free.pop() ?? Buffer.allocUnsafeSlow(BUFFER_SIZE);
}

/**
 * Returns a buffer to the pool. Only a buffer that no pending I/O still reads or
 * writes may come back: after a failed transfer, drop it instead.
 */
export function giveBack(buffer: Buffer): void {
  if (free.length < KEEP && buffer.length === BUFFER_SIZE) free.push(buffer);
}
