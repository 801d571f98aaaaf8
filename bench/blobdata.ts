// Large blobs generated on the fly, never held in memory: 1 MiB blocks of random bytes,
// each stamped with its index so that no two blocks are equal. Any byte range can be
// streamed again (for chunked pushes), and the digest is computed once in a setup pass.

import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';

const BLOCK = 1 << 20;

export interface GeneratedBlob {
  size: number;
  digest: string;
  /** The bytes [start, end) as a stream. */
  stream(start?: number, end?: number): Readable;
}

export function generatedBlob(size: number): GeneratedBlob {
  const base = randomBytes(BLOCK);
  const block = (index: number): Buffer => {
    const b = Buffer.allocUnsafe(BLOCK);
    base.copy(b);
    b.writeDoubleLE(index, 0);
    return b;
  };
  const stream = (start = 0, end = size): Readable => {
    let offset = start;
    return new Readable({
      highWaterMark: 4 * BLOCK,
      read() {
        if (offset >= end) return void this.push(null);
        const index = Math.floor(offset / BLOCK);
        const from = offset - index * BLOCK;
        const to = Math.min(BLOCK, end - index * BLOCK);
        const b = block(index);
        offset += to - from;
        this.push(from === 0 && to === BLOCK ? b : b.subarray(from, to));
      },
    });
  };
  const hash = createHash('sha256');
  for (let i = 0; i * BLOCK < size; i++) {
    const b = block(i);
    hash.update(b.subarray(0, Math.min(BLOCK, size - i * BLOCK)));
  }
  return { size, digest: `sha256:${hash.digest('hex')}`, stream };
}

/** Small blobs of random content and size in [min, max], held in memory with their digests. */
export function smallBlobs(count: number, min: number, max: number): { bytes: Buffer; digest: string }[] {
  return Array.from({ length: count }, () => {
    const bytes = randomBytes(min + Math.floor(Math.random() * (max - min + 1)));
    return { bytes, digest: sha256(bytes) };
  });
}

export function sha256(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}
