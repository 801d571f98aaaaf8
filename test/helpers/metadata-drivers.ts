// Runs a suite of MetadataStore tests on each driver: SQLite in a temporary directory,
// and PostgreSQL (a database of its own on a test server) when it is installed.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe } from 'vitest';
import type { MetadataStore } from '../../storage/ports.js';
import { PostgresMetadataStore } from '../../storage/postgres/metadata.js';
import { SqliteMetadataStore } from '../../storage/sqlite/metadata.js';
import { e2eTools } from './images.js';
import { startPostgres, type Postgres } from './postgres.js';

export type OpenMetadata = () => Promise<{ meta: MetadataStore; close(): Promise<void> }>;

/** Calls `suite` once per driver with the driver's name and a function that opens a fresh store. */
export function onEachMetadataDriver(suite: (driver: string, open: OpenMetadata) => void): void {
  suite('SQLite', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-meta-'));
    const meta = SqliteMetadataStore.open(dir);
    return {
      meta,
      async close() {
        await meta.close();
        await rm(dir, { recursive: true, force: true });
      },
    };
  });

  describe.skipIf(!e2eTools('postgres'))('PostgreSQL', () => {
    let db: Postgres;
    let url: string;
    beforeAll(async () => {
      db = await startPostgres();
      url = await db.createDatabase();
    });
    afterAll(() => db?.destroy());
    suite('PostgreSQL', async () => {
      const meta = await PostgresMetadataStore.open({ url });
      return { meta, close: () => meta.close() };
    });
  });
}
