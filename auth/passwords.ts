// Password hashes: scrypt from node:crypto with a random salt, stored with their cost
// parameters (`$scrypt$ln=15,r=8,p=1$<salt>$<hash>`, base64) so the cost can be raised
// later without invalidating existing hashes. Comparison is constant-time.

import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

const LOG_N = 15; // 2^15 rounds with r=8: about 32 MiB and 75 ms per hash on a current core
const BLOCK_SIZE = 8;
const PARALLELISM = 1;
const KEY_LENGTH = 32;
const SALT_LENGTH = 16;

/**
 * Hashes run at once. scrypt runs on libuv's thread pool (4 threads unless
 * UV_THREADPOOL_SIZE says otherwise), which file reads and writes share: with every
 * thread hashing, a blob GET waited seconds behind a login flood. Two leave the others to
 * the data path, and bound the memory too (32 MiB per hash).
 */
const MAX_HASHING = 2;
/** Hashes waiting for a thread (about 75 ms each): beyond this a login is refused at once. */
const MAX_WAITING = 16;

/** Thrown when the hash queue is full; the caller answers "busy, retry" instead of waiting. */
export class HashQueueFullError extends Error {
  constructor() {
    super('too many password checks in progress');
  }
}

let hashing = 0;
const waiting: (() => void)[] = [];

/** Whether a hash asked for now would be refused with HashQueueFullError. */
export function hashQueueFull(): boolean {
  return hashing >= MAX_HASHING && waiting.length >= MAX_WAITING;
}

async function derive(password: string, salt: Buffer, logN: number, r: number, p: number): Promise<Buffer> {
  if (hashQueueFull()) throw new HashQueueFullError();
  if (hashing < MAX_HASHING) hashing++;
  else await new Promise<void>((resolve) => waiting.push(resolve));
  const options: ScryptOptions = { N: 2 ** logN, r, p, maxmem: 256 * 2 ** logN * r * p };
  try {
    return await new Promise((resolve, reject) => {
      scrypt(password.normalize('NFC'), salt, KEY_LENGTH, options, (err, key) => (err ? reject(err) : resolve(key)));
    });
  } finally {
    // Hand the slot straight to the next in line, or free it.
    const next = waiting.shift();
    if (next) next();
    else hashing--;
  }
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(SALT_LENGTH);
  const key = await derive(password, salt, LOG_N, BLOCK_SIZE, PARALLELISM);
  return `$scrypt$ln=${LOG_N},r=${BLOCK_SIZE},p=${PARALLELISM}$${salt.toString('base64')}$${key.toString('base64')}`;
}

const HASH_RE = /^\$scrypt\$ln=(\d+),r=(\d+),p=(\d+)\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$/;

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const m = HASH_RE.exec(stored);
  if (!m) return false;
  const [logN, r, p] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (logN < 10 || logN > 22 || r < 1 || r > 32 || p < 1 || p > 16) return false;
  const expected = Buffer.from(m[5], 'base64');
  const actual = await derive(password, Buffer.from(m[4], 'base64'), logN, r, p);
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}

/**
 * A hash of no one's password, checked against when a login names an unknown user so
 * that the answer takes as long as for a known one and does not reveal which users exist.
 */
export const DECOY_HASH = `$scrypt$ln=${LOG_N},r=${BLOCK_SIZE},p=${PARALLELISM}$${Buffer.alloc(SALT_LENGTH).toString('base64')}$${Buffer.alloc(KEY_LENGTH).toString('base64')}`;
