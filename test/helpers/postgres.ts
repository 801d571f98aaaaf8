// A throwaway PostgreSQL 15 (Debian's) for the tests of the PostgreSQL metadata store:
// one cluster per test file, `initdb --no-sync` in /dev/shm, the server listening on
// 127.0.0.1 only (no Unix socket) on a free port, durability off (fsync, WAL) because
// the data is thrown away. About 0.6 s to start. As root it runs as the `postgres`
// account, since PostgreSQL refuses to run as root.
//
//   if (e2eTools('postgres')) { const pg = await startPostgres(); const url = await pg.createDatabase(); ... await pg.destroy(); }

import { execFile } from 'node:child_process';
import { chown, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { TOOLS } from './images.js';
import { freePort } from '../../bench/servers.js';
import { account, serviceDir, startDaemon, type Daemon } from './daemon.js';

const run = promisify(execFile);
const BIN = dirname(TOOLS.postgres);
const READY = /database system is ready to accept connections/;
const START_TIMEOUT_MS = 30_000;

export interface Postgres {
  /** `postgres://postgres@127.0.0.1:PORT/postgres`, the superuser on the maintenance database. */
  url: string;
  port: number;
  /** Creates a fresh empty database and returns its URL (each test's replicas share one). */
  createDatabase(): Promise<string>;
  /** Stops the server (fast shutdown: sessions are cut), keeping its data. */
  stop(): Promise<void>;
  /** Starts it again on the same data and port, after `stop`. */
  start(): Promise<void>;
  /** Stops it and removes its data directory. */
  destroy(): Promise<void>;
}

let databases = 0;

export async function startPostgres(): Promise<Postgres> {
  const dir = await serviceDir('pg');
  const data = join(dir, 'data');
  const owner = process.getuid?.() === 0 ? account('postgres') : undefined;
  const asUser = owner ?? {};
  try {
    if (owner) await chown(dir, owner.uid, owner.gid);
    await run(join(BIN, 'initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C', '--no-sync'], asUser);
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }

  let daemon: Daemon | undefined;
  let port = 0;
  const start = async (fixedPort?: number) => {
    for (let attempt = 0; ; attempt++) {
      port = fixedPort ?? (await freePort());
      daemon = startDaemon('postgres', join(BIN, 'postgres'), [
        '-D', data, '-p', String(port),
        '-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=',
        '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off',
        '-c', 'wal_level=minimal', '-c', 'max_wal_senders=0',
        // shared memory segments in the data directory, so they go with it
        '-c', 'dynamic_shared_memory_type=mmap',
        // two replicas' pools per test, several test files per cluster run at once
        '-c', 'max_connections=200',
      ], asUser);
      try {
        await daemon.waitFor(READY, START_TIMEOUT_MS, 'ready line');
        return;
      } catch (err) {
        // The port picked free was taken in between: pick another (not on a restart).
        if (fixedPort === undefined && attempt < 3 && /Address already in use/.test(daemon.output())) continue;
        throw err;
      }
    }
  };
  try {
    await start();
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }

  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  return {
    url,
    port,
    async createDatabase() {
      const name = `berth_${process.pid}_${++databases}`;
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        await client.query(`CREATE DATABASE ${name}`);
      } finally {
        await client.end();
      }
      return `postgres://postgres@127.0.0.1:${port}/${name}`;
    },
    // SIGINT is PostgreSQL's fast shutdown: open sessions are terminated, as in a restart.
    stop: () => daemon!.stop('SIGINT'),
    start: () => start(port),
    async destroy() {
      await daemon?.stop('SIGINT');
      await rm(dir, { recursive: true, force: true });
    },
  };
}
