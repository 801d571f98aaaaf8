// Digests: every byte the client receives or sends is hashed on the way through and
// checked against the descriptor (digest and size) before it is trusted or renamed
// into place.

import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { Transform, type TransformCallback } from 'node:stream';

export class DigestMismatchError extends Error {}

export function algorithmOf(digest: string): 'sha256' | 'sha512' {
  const alg = digest.slice(0, digest.indexOf(':'));
  if (alg !== 'sha256' && alg !== 'sha512') throw new Error(`unsupported digest algorithm in ${digest}`);
  return alg;
}

export function digestOf(data: Buffer | string, algorithm: 'sha256' | 'sha512' = 'sha256'): string {
  return `${algorithm}:${createHash(algorithm).update(data).digest('hex')}`;
}

/** Checks bytes held in memory (manifests) against a digest and optional size. */
export function verifyBuffer(data: Buffer, digest: string, size?: number): void {
  if (size !== undefined && data.length !== size) {
    throw new DigestMismatchError(`size mismatch for ${digest}: expected ${size} bytes, got ${data.length}`);
  }
  const actual = digestOf(data, algorithmOf(digest));
  if (actual !== digest) throw new DigestMismatchError(`digest mismatch: expected ${digest}, got ${actual}`);
}

/**
 * A pass-through stream that hashes and counts what flows through it. It can be primed
 * with a hash of bytes already on disk (a resumed download), and `check()` compares the
 * total with the expected digest and size.
 */
export class HashingStream extends Transform {
  readonly hash: Hash;
  bytes: number;

  constructor(algorithm: 'sha256' | 'sha512' = 'sha256', primed?: { hash: Hash; bytes: number }) {
    super();
    this.hash = primed?.hash ?? createHash(algorithm);
    this.bytes = primed?.bytes ?? 0;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    cb(null, chunk);
  }

  check(digest: string, size?: number): void {
    if (size !== undefined && this.bytes !== size) {
      throw new DigestMismatchError(`size mismatch for ${digest}: expected ${size} bytes, got ${this.bytes}`);
    }
    const actual = `${algorithmOf(digest)}:${this.hash.copy().digest('hex')}`;
    if (actual !== digest) throw new DigestMismatchError(`digest mismatch: expected ${digest}, got ${actual}`);
  }
}

/** Hashes the first `length` bytes of a file (the part of a download already on disk). */
export async function hashFilePrefix(path: string, algorithm: 'sha256' | 'sha512', length: number): Promise<Hash> {
  const hash = createHash(algorithm);
  if (length === 0) return hash;
  for await (const chunk of createReadStream(path, { start: 0, end: length - 1 })) hash.update(chunk as Buffer);
  return hash;
}

/** Digest and size of a whole file, streamed. */
export async function digestFile(path: string, algorithm: 'sha256' | 'sha512' = 'sha256'): Promise<{ digest: string; size: number }> {
  const hash = createHash(algorithm);
  let size = 0;
  for await (const chunk of createReadStream(path)) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { digest: `${algorithm}:${hash.digest('hex')}`, size };
}
