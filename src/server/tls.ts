// HTTPS for the registry: the certificate and key files are read at start, and again
// on SIGHUP (a renewed certificate) without dropping connections. A reload that fails
// (a half-written file) keeps the certificate in use.

import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import type { Server as HttpsServer } from 'node:https';

export interface TlsFiles {
  cert: string;
  key: string;
}

/** Reads and checks the pair: a key that does not match its certificate throws here. */
export function readTls(files: TlsFiles): { cert: Buffer; key: Buffer } {
  const pair = { cert: readFileSync(files.cert), key: readFileSync(files.key) };
  createSecureContext(pair);
  return pair;
}

export function reloadTls(server: HttpsServer, files: TlsFiles): void {
  server.setSecureContext(readTls(files));
}
