// The PostgreSQL connection pool of one replica, and the migrations every replica
// applies at start-up (the first one to take the advisory lock applies them; the others
// wait for it and find nothing left to do).
//
// A pool outlives its database: while PostgreSQL is down or restarting, queries reject
// with StoreUnavailableError (the request answers 503) and broken connections are dropped;
// the next query after it is back opens fresh ones. Nothing here may crash the process.

import pg from 'pg';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { StoreUnavailableError } from '../ports.js';

/** Key of the session advisory lock held while migrations run (any constant unique to Berth). */
const MIGRATION_LOCK = 0x62657274_6d; // "bertm"

export interface PoolOptions {
  /** `postgres://user:password@host:port/database` (libpq URL; `?sslmode=...` honoured). */
  url: string;
  /** Connections per replica (default 10). */
  max?: number;
}

// BIGINT (int8) columns hold times in ms and sizes in bytes: both fit a double exactly.
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === pg.types.builtins.INT8 ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
};

export function createPool(options: PoolOptions): pg.Pool {
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.max ?? 10,
    types,
    // Fail a request within seconds while the database is unreachable, instead of hanging.
    connectionTimeoutMillis: 5000,
    idleTimeoutMillis: 30_000,
    // A statement stuck on a lock or a dead server must not hold a request forever.
    statement_timeout: 30_000,
    query_timeout: 35_000,
    keepAlive: true,
  });
  // An idle connection cut by a PostgreSQL restart is reported here; the pool already
  // dropped it. Without a listener the error would crash the process.
  pool.on('error', () => undefined);
  return pool;
}

const CONNECTION_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);

/**
 * True for errors that say the database is unreachable or going away (as opposed to a
 * bad statement): connection failures, administrator shutdown (57P01-57P03: a restart)
 * and SQLSTATE class 08 (connection exceptions).
 */
export function isConnectionError(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown };
  const code = typeof e?.code === 'string' ? e.code : '';
  if (CONNECTION_CODES.has(code) || code.startsWith('08') || code === '57P01' || code === '57P02' || code === '57P03') return true;
  const message = typeof e?.message === 'string' ? e.message : '';
  return /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error|Query read timeout/i.test(message);
}

/** Rethrows connection failures as StoreUnavailableError (503), anything else as is. */
export function unavailable(err: unknown): never {
  if (isConnectionError(err)) {
    throw new StoreUnavailableError(`the metadata database (PostgreSQL) is unavailable: ${(err as Error).message}`, { cause: err });
  }
  throw err;
}

/** migrations/postgres/ sits at the package root, beside storage/ in the sources and above dist/. */
async function migrationsDir(): Promise<string> {
  const here = fileURLToPath(new URL('.', import.meta.url));
  for (const root of [join(here, '..', '..'), join(here, '..', '..', '..')]) {
    const dir = join(root, 'migrations', 'postgres');
    try {
      await readdir(dir);
      return dir;
    } catch {
      // try the next layout
    }
  }
  throw new Error('migrations/postgres not found');
}

/**
 * Applies the numbered files of migrations/postgres/ that the database has not recorded,
 * each in its own transaction, under a session advisory lock so that replicas starting
 * together apply each file once.
 */
export async function migrate(pool: pg.Pool): Promise<void> {
  const dir = await migrationsDir();
  const files = (await readdir(dir)).filter((f) => /^\d+_.*\.sql$/.test(f)).sort((a, b) => parseInt(a, 10) - parseInt(b, 10));
  const client = await pool.connect().catch(unavailable);
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    try {
      await client.query('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)');
      const applied = new Set((await client.query<{ version: number }>('SELECT version FROM schema_migrations')).rows.map((r) => r.version));
      for (const file of files) {
        const version = parseInt(file, 10);
        if (applied.has(version)) continue;
        const sql = await readFile(join(dir, file), 'utf8');
        await client.query('BEGIN');
        try {
          await client.query(sql);
          await client.query('INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)', [version, file, Date.now()]);
          await client.query('COMMIT');
        } catch (err) {
          await client.query('ROLLBACK').catch(() => undefined);
          throw new Error(`migration ${file} failed: ${(err as Error).message}`, { cause: err });
        }
      }
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]).catch(() => undefined);
    }
  } catch (err) {
    client.release(true);
    unavailable(err);
  }
  client.release();
}
