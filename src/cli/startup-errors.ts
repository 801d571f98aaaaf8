// What `berth serve` says when it cannot start: one line naming the address or path and
// what to do, instead of a raw EADDRINUSE, "unable to open database file" or
// "EEXIST: ... mkdir". Used by serve.ts around startServer.

import { accessSync, constants, statSync } from 'node:fs';
import { resolve } from 'node:path';

interface StartupContext {
  /** The main listen address as configured (`host:port`). */
  listen: string;
  data: string;
}

type NodeError = NodeJS.ErrnoException & { address?: string; port?: number };

function isDirectory(path: string): boolean | undefined {
  try {
    return statSync(path).isDirectory();
  } catch {
    return undefined;
  }
}

function writable(path: string): boolean {
  try {
    accessSync(path, constants.W_OK | constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

const who = () => (process.getuid ? `user ${process.getuid()}` : 'this user');

/** A one-line error for a start-up failure berth knows, or undefined for any other. */
export function explainStartupError(err: unknown, ctx: StartupContext): Error | undefined {
  const e = err as NodeError;
  const data = resolve(ctx.data);
  if (e?.syscall === 'listen' || e?.code === 'EADDRINUSE' || e?.code === 'EADDRNOTAVAIL') {
    const address = e.address !== undefined && e.port !== undefined ? `${e.address.includes(':') ? `[${e.address}]` : e.address}:${e.port}` : ctx.listen;
    if (e.code === 'EADDRINUSE') return new Error(`cannot listen on ${address}: another process uses it; stop that process or pick a free port with --listen HOST:PORT`);
    if (e.code === 'EACCES') return new Error(`cannot listen on ${address}: ports below 1024 need root or CAP_NET_BIND_SERVICE; pick a port above 1023 with --listen HOST:PORT`);
    if (e.code === 'EADDRNOTAVAIL') return new Error(`cannot listen on ${address}: no network interface of this machine has that address; use one it has, or 0.0.0.0, with --listen HOST:PORT`);
    return undefined;
  }
  const onDataPath = typeof e?.path === 'string' && (resolve(e.path) === data || resolve(e.path).startsWith(`${data}/`) || data.startsWith(`${resolve(e.path)}/`));
  if ((e?.code === 'EEXIST' || e?.code === 'ENOTDIR') && onDataPath) {
    return new Error(`the data path ${data} is not a directory (a file is in the way): remove it, or pick another directory with --data DIR`);
  }
  if ((e?.code === 'EACCES' || e?.code === 'EPERM' || e?.code === 'EROFS') && onDataPath && isDirectory(data) === undefined) {
    return new Error(`cannot create the data directory ${data} as ${who()} (${e.code}): create it with an owner this user may write to, or pick another with --data DIR`);
  }
  const sqliteCantOpen = e?.code === 'SQLITE_CANTOPEN' || e?.code === 'SQLITE_READONLY' || /unable to open database file|readonly database/.test(e?.message ?? '');
  if ((sqliteCantOpen || e?.code === 'EACCES' || e?.code === 'EROFS') && isDirectory(data) && !writable(data)) {
    return new Error(`the data directory ${data} is not writable by ${who()}: give this user write access (chown/chmod), or pick another with --data DIR`);
  }
  return undefined;
}
