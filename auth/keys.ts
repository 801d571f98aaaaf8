// The key pair Berth signs its tokens with. It is created at the first start and kept in
// <data>/auth/token-key.pem (PKCS#8, mode 0600), so tokens survive restarts and every
// replica sharing the data directory signs and verifies with the same key.

import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { linkSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface SigningKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** The `kid` header of our tokens: the RFC 7638 thumbprint of the public key. */
  kid: string;
  alg: 'ES256';
}

export function signingKeyPath(dataDir: string): string {
  return join(dataDir, 'auth', 'token-key.pem');
}

export function loadOrCreateSigningKey(dataDir: string): SigningKey {
  const path = signingKeyPath(dataDir);
  let pem: string;
  try {
    pem = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    pem = createKeyFile(path);
  }
  const privateKey = createPrivateKey(pem);
  const publicKey = createPublicKey(privateKey);
  return { privateKey, publicKey, kid: thumbprint(publicKey), alg: 'ES256' };
}

/**
 * Writes a new key beside its final name and links it into place: link() fails when the
 * file exists, so two servers starting at once on one data directory end up with one key.
 */
function createKeyFile(path: string): string {
  mkdirSync(join(path, '..'), { recursive: true, mode: 0o700 });
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pem = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
  const temp = `${path}.${process.pid}.tmp`;
  writeFileSync(temp, pem, { mode: 0o600, flag: 'wx' });
  try {
    linkSync(temp, path);
    return pem;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return readFileSync(path, 'utf8');
  } finally {
    unlinkSync(temp);
  }
}

function thumbprint(publicKey: KeyObject): string {
  const jwk = publicKey.export({ format: 'jwk' });
  // RFC 7638: the required members in lexicographic order, no whitespace.
  const canonical = JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y });
  return createHash('sha256').update(canonical).digest('base64url');
}
