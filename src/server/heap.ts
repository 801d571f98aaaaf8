// Young-generation collections paced by upload bytes, when node was started with
// --expose-gc (src/cli/node-flags.ts).
//
// Node's HTTP parser copies every request-body chunk into an allocation of its own (up
// to 64 KiB, outside V8's heap), and only a scavenge frees them. Left to itself V8 runs
// one per 32 MB of such chunks, and meanwhile counts them against the old generation's
// limit: for a heap of Berth's size every 16 MB uploaded started a full mark-compact,
// about 60 per GiB and half a second of the main thread (a 1 GiB streamed push ran at
// about 440 MB/s instead of 700). The chunks also came from the C heap, which keeps its
// high-water mark, so the server's resident memory grew by those 32 MB and stayed so.
//
// A scavenge every 2 MiB of body, across all uploads at once, frees them as they go:
// no mark-compacts during a push, and a few MB in flight. It costs about 0.3 ms per
// scavenge, some 150 ms per GiB. At 4 MiB the mark-compacts came back.

/** Body bytes between two young-generation collections. */
const SCAVENGE_EVERY = 2 << 20;

const gc = (globalThis as { gc?: (options: { type: 'minor' }) => void }).gc;
let sinceScavenge = 0;

/** Counts request-body bytes as uploads take them from their streams. */
export function paceCollections(bytes: number): void {
  if (!gc) return;
  sinceScavenge += bytes;
  if (sinceScavenge < SCAVENGE_EVERY) return;
  sinceScavenge = 0;
  gc({ type: 'minor' });
}
