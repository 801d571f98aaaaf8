// A sha256 running in its own thread, for the verified pull: hashing on the thread
// that also receives the body capped the client near 1 GB/s, below what a server can
// send on loopback. Each message is a batch of transferred body chunks, acknowledged
// with its size so the sender can bound what is in flight; "end" answers with the hex
// digest.

import { createHash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';

const hash = createHash('sha256');
parentPort!.on('message', (msg: ArrayBuffer[] | 'end') => {
  if (msg === 'end') {
    parentPort!.postMessage({ digest: hash.digest('hex') });
    return;
  }
  let bytes = 0;
  for (const chunk of msg) {
    hash.update(new Uint8Array(chunk));
    bytes += chunk.byteLength;
  }
  parentPort!.postMessage({ ack: bytes });
});
