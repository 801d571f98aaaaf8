// A small pool of 1 MiB buffers shared by blob uploads and downloads.
//
// Buffers outside V8's heap are memory V8 counts against its collection limits and that
// only a collection gives back (src/server/heap.ts tells how much that cost uploads).
// Upload bodies are copied out of the socket's chunks into these, so the chunks can go
// at the next scavenge while the bytes wait for their write; downloads read into them.
// Reusing the same few keeps that memory flat instead of 1 MiB more per transfer.

const BUFFER_SIZE = 1 << 20;

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
