// Opens the metadata database (<data>/registry.db) and applies the numbered SQL files
// of migrations/sqlite/ that it has not seen yet, each in its own transaction.

import Database from 'better-sqlite3';
import { existsSync, readdirSync, readFileSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export type Db = Database.Database;

/**
 * How long one attempt waits for a lock inside SQLite, blocking the event loop. Kept
 * tiny: longer waits happen in the driver, asynchronously (see SqliteMetadataStore.retry).
 */
const BUSY_TIMEOUT_MS = 2;

/** migrations/sqlite sits at the package root, both beside storage/ in the sources and above dist/. */
function migrationsDir(): string {
  const here = fileURLToPath(new URL('.', import.meta.url));
  const candidates = [join(here, '..', '..', 'migrations', 'sqlite'), join(here, '..', '..', '..', 'migrations', 'sqlite')];
  for (const dir of candidates) {
    try {
      readdirSync(dir);
      return dir;
    } catch {
      // try the next layout
    }
  }
  throw new Error('migrations directory not found');
}

/**
 * Space kept free for the database on a full disk: a file of this size in the data
 * directory, given up when SQLite finds the disk full (at start-up, or on a write such
 * as a collection's), and made again at the next start-up with room. Without it a full
 * disk would keep the server from starting and `gc` from freeing anything.
 */
const RESERVE_FILE = '.space-reserve';
const RESERVE_BYTES = 2 << 20;

export function isDiskFull(err: unknown): boolean {
  const code = (err as { code?: unknown })?.code;
  return code === 'SQLITE_FULL' || code === 'ENOSPC';
}

/** At open, a full disk shows as an I/O error too: the WAL index (-shm) cannot grow. */
function mayBeDiskFull(err: unknown): boolean {
  const code = (err as { code?: unknown })?.code;
  return isDiskFull(err) || (typeof code === 'string' && code.startsWith('SQLITE_IOERR'));
}

/** Gives the reserve up; false when there was none left. */
export function releaseReserve(dataDir: string): boolean {
  const path = join(dataDir, RESERVE_FILE);
  if (!existsSync(path)) return false;
  rmSync(path, { force: true });
  return true;
}

/** Makes the reserve when it is missing and there is room (a failed attempt leaves nothing). */
function keepReserve(dataDir: string): void {
  const path = join(dataDir, RESERVE_FILE);
  if (existsSync(path)) return;
  try {
    writeFileSync(path, Buffer.alloc(RESERVE_BYTES));
  } catch {
    rmSync(path, { force: true });
  }
}

export function openDatabase(dataDir: string, options: { readOnly?: boolean } = {}): Db {
  const path = join(dataDir, 'registry.db');
  // A new, empty registry in read-only mode: made once (on a writable directory), then opened read-only.
  if (options.readOnly && existsSync(path)) return openReadOnly(path);
  if (options.readOnly) {
    openDatabase(dataDir).close();
    return openReadOnly(path);
  }
  mkdirSync(dataDir, { recursive: true });
  let db: Db;
  try {
    db = openWritable(path);
  } catch (err) {
    if (!mayBeDiskFull(err) || !releaseReserve(dataDir)) throw err;
    db = openWritable(path);
  }
  keepReserve(dataDir);
  return db;
}

function openWritable(path: string): Db {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  // FULL: a commit is on disk before it is acknowledged (NORMAL in WAL mode can lose the
  // last transactions on power failure: an acknowledged manifest or tag). The cost is one
  // fsync of the WAL per write transaction; see the README's benchmark table.
  db.pragma('synchronous = FULL');
  db.pragma('foreign_keys = ON');
  db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
  try {
    migrate(db);
  } catch (err) {
    db.close();
    throw err;
  }
  return db;
}

/**
 * A read-only open for `--read-only` on a read-only mount: no migrations, no writes. A
 * WAL database can only be opened read-only where its -shm file exists or can be
 * created; on a read-only mount after a clean shutdown it does not, so the file is read
 * into memory instead, which is safe because nothing can change it underneath.
 */
function openReadOnly(path: string): Db {
  try {
    const db = new Database(path, { readonly: true, fileMustExist: true });
    db.prepare('SELECT 1 FROM schema_migrations LIMIT 1').get();
    return db;
  } catch (err) {
    if ((err as { code?: string }).code !== 'SQLITE_CANTOPEN') throw err;
  }
  return openInMemory(readFileSync(path), { readonly: true });
}

/** Opens a database image (a file's bytes, or serialize()'s) in memory, in rollback-journal mode. */
export function openInMemory(bytes: Buffer, options: { readonly?: boolean } = {}): Db {
  // Bytes 18-19 of the header: 2 = WAL, which an in-memory database cannot use.
  bytes[18] = 1;
  bytes[19] = 1;
  const db = new Database(bytes, options);
  db.pragma('foreign_keys = ON');
  return db;
}

function migrate(db: Db): void {
  db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)');
  const applied = new Set(
    (db.prepare('SELECT version FROM schema_migrations').all() as { version: number }[]).map((r) => r.version),
  );
  const dir = migrationsDir();
  const files = readdirSync(dir)
    .filter((f) => /^\d+_.*\.sql$/.test(f))
    .sort((a, b) => parseInt(a, 10) - parseInt(b, 10));
  const record = db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)');
  for (const file of files) {
    const version = parseInt(file, 10);
    if (applied.has(version)) continue;
    const sql = readFileSync(join(dir, file), 'utf8');
    // IMMEDIATE: two processes starting at once must not both apply the same file.
    // Start-up may wait for a lock synchronously: nothing is served yet.
    db.pragma('busy_timeout = 10000');
    try {
      db.transaction(() => {
        const again = db.prepare('SELECT 1 FROM schema_migrations WHERE version = ?').get(version);
        if (again) return;
        db.exec(sql);
        record.run(version, file, Date.now());
      }).immediate();
    } finally {
      db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    }
  }
}
