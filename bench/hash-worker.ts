// A sha256 running in its own thread, for the verified pull: hashing on the thread
// that also receives the body capped the client near 1 GB/s, below what a server can
// send on loopback. Chunks arrive as transferred ArrayBuffers; each is acknowledged
// so the sender can bound what is in flight. "end" answers with the hex digest.

import { createHash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';

const hash = createHash('sha256');
parentPort!.on('message', (msg: ArrayBuffer | 'end') => {
  if (msg === 'end') {
    parentPort!.postMessage({ digest: hash.digest('hex') });
    return;
  }
  hash.update(new Uint8Array(msg));
  parentPort!.postMessage({ ack: msg.byteLength });
});
