// A sha256 running in its own thread, for the verified pull: hashing on the thread
// that also receives the body capped the client near 1 GB/s, below what a server can
// send on loopback. The body arrives in the slots of a shared ring (workerData.ring):
// each message names a slot and its length, and is acknowledged with the slot once
// hashed, so the receiving thread can fill it again. "end" answers with the hex digest.

import { createHash } from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';

const { ring, slotSize } = workerData as { ring: SharedArrayBuffer; slotSize: number };
const hash = createHash('sha256');
parentPort!.on('message', (msg: { slot: number; length: number } | 'end') => {
  if (msg === 'end') {
    parentPort!.postMessage({ digest: hash.digest('hex') });
    return;
  }
  hash.update(new Uint8Array(ring, msg.slot * slotSize, msg.length));
  parentPort!.postMessage({ ack: msg.slot });
});
