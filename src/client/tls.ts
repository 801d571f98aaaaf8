// How the client reaches a registry: HTTPS first, trusting the system's CAs plus any given
// with --ca-cert and the `*.crt` files of `/etc/containers/certs.d/<host:port>/` and
// `/etc/docker/certs.d/<host:port>/` (podman's and docker's places); plain HTTP only for
// a loopback registry or one marked insecure (--insecure, --tls-verify=false) whose
// port does not speak TLS, as docker does. An insecure registry's certificate is not
// verified.
//
// BERTH_CERTS_DIRS (colon-separated) replaces the two certs.d roots, for tests and for
// machines that keep them elsewhere.

import { readdir, readFile } from 'node:fs/promises';
import { rootCertificates } from 'node:tls';
import { join } from 'node:path';
import { Agent, type Dispatcher } from 'undici';
import { isLoopback } from './reference.js';

export interface TlsOptions {
  /** Plain HTTP allowed and the certificate not verified (docker's insecure registry). */
  insecure?: boolean;
  /** Extra CA certificate files (PEM) to trust. */
  caCert?: string | string[];
}

export const DEFAULT_CERTS_DIRS = ['/etc/containers/certs.d', '/etc/docker/certs.d'];

function certsDirs(): string[] {
  const env = process.env.BERTH_CERTS_DIRS;
  return env ? env.split(':').filter(Boolean) : DEFAULT_CERTS_DIRS;
}

/** The `*.crt` files of `<root>/<host:port>/` under every certs.d root. */
async function certsDFiles(registry: string): Promise<string[]> {
  const files: string[] = [];
  for (const root of certsDirs()) {
    const dir = join(root, registry);
    const names = await readdir(dir).catch(() => [] as string[]);
    files.push(...names.filter((n) => n.endsWith('.crt')).sort().map((n) => join(dir, n)));
  }
  return files;
}

export interface Connection {
  /** Whether HTTP may be tried when the port does not speak TLS. */
  httpFallback: boolean;
  /** undici dispatcher for fetch, when the defaults (system CAs, verification) do not do. */
  dispatcher?: Dispatcher;
}

/** How to connect to `registry` (`host[:port]`). */
export async function connectionFor(registry: string, opts: TlsOptions): Promise<Connection> {
  const httpFallback = !!opts.insecure || isLoopback(registry);
  const given = opts.caCert === undefined ? [] : Array.isArray(opts.caCert) ? opts.caCert : [opts.caCert];
  const files = [...given, ...(await certsDFiles(registry))];
  if (!opts.insecure && files.length === 0) return { httpFallback };
  const ca = [...rootCertificates];
  for (const file of files) {
    try {
      ca.push(await readFile(file, 'utf8'));
    } catch (err) {
      throw new Error(`cannot read the CA certificate ${file}: ${(err as Error).message}`);
    }
  }
  const dispatcher = new Agent({ connect: opts.insecure ? { rejectUnauthorized: false } : { ca } });
  return { httpFallback, dispatcher };
}

const CERT_ERROR = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|ALTNAME/;

/** A TLS error that says the certificate is not trusted (as opposed to no TLS at all). */
export function isCertificateError(code: string, message: string): boolean {
  return CERT_ERROR.test(code) || /self[- ]signed certificate|unable to verify|certificate/i.test(message);
}

/**
 * A failed HTTPS connection that means "this port speaks plain HTTP": the TLS handshake got
 * an HTTP answer (wrong version number) or the server hung up on it.
 */
export function isNotTls(code: string, message: string): boolean {
  if (isCertificateError(code, message)) return false;
  return /WRONG_VERSION_NUMBER|EPROTO|ECONNRESET|UND_ERR_SOCKET|packet length too long|wrong version|socket hang up|other side closed/i.test(
    `${code} ${message}`,
  );
}
