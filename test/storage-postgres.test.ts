// The MetadataStore port on a real PostgreSQL 15 (test/helpers/postgres.ts): what the
// registry relies on from any metadata driver, plus what only a shared database needs
// (migrations applied once by replicas starting together, leases between replicas,
// surviving a PostgreSQL restart).

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { e2eTools } from './helpers/images.js';
import { startPostgres, type Postgres } from './helpers/postgres.js';
import { PostgresMetadataStore } from '../storage/postgres/metadata.js';
import { BlobMarkedError, StoreUnavailableError, type NewManifest } from '../storage/ports.js';

const d = (c: string) => `sha256:${c.repeat(64).slice(0, 64)}`;

function manifest(repository: string, digest: string, extra: Partial<NewManifest> = {}): NewManifest {
  return { repository, digest, mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 100, artifactType: null, subject: null, annotations: null, blobs: [], children: [], tags: [], ...extra };
}

describe.skipIf(!e2eTools('postgres'))('PostgreSQL metadata store', () => {
  let db: Postgres;
  let url: string;
  let a: PostgresMetadataStore;
  let b: PostgresMetadataStore;

  beforeAll(async () => {
    db = await startPostgres();
    url = await db.createDatabase();
    // Two replicas starting at once: one applies the migrations, the other waits for it.
    [a, b] = await Promise.all([PostgresMetadataStore.open({ url }), PostgresMetadataStore.open({ url })]);
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await db?.destroy();
  });

  it('applies each migration once when replicas start together', async () => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    const { rows } = await client.query('SELECT version, name FROM schema_migrations ORDER BY version');
    await client.end();
    expect(rows).toEqual([{ version: 1, name: '001_init.sql' }, { version: 2, name: '002_proxy.sql' }, { version: 3, name: '003_browse.sql' }]);
  });

  it('links blobs per repository: a blob one replica records, the other serves only where it is linked', async () => {
    await a.addBlob({ repository: 'team/app', digest: d('a'), size: 10 });
    expect(await b.blobInRepository('team/app', d('a'))).toBe(10);
    expect(await b.blobInRepository('team/other', d('a'))).toBeUndefined();
    expect(await b.blobSize(d('a'))).toBe(10);
    expect(await b.aRepositoryWithBlob(d('a'))).toBe('team/app');
    expect(await b.mountBlob('team/other', d('a'))).toBe(true);
    expect(await a.blobInRepository('team/other', d('a'))).toBe(10);
    expect(await a.mountBlob('team/other', d('f'))).toBe(false);
    expect(await a.unlinkBlob('team/other', d('a'))).toBe('unlinked');
    expect(await a.unlinkBlob('team/other', d('a'))).toBe('unknown');
    expect(await a.unlinkBlob('nowhere', d('a'))).toBe('unknown');
  });

  it('stores a manifest with its tags only when every reference is there, in one transaction', async () => {
    await a.addBlob({ repository: 'm/x', digest: d('1'), size: 1 });
    const missing = await a.putManifest(manifest('m/x', d('2'), { blobs: [{ digest: d('1'), kind: 'config' }, { digest: d('3'), kind: 'layer' }], tags: ['v1'] }));
    expect(missing).toEqual({ digest: d('3'), kind: 'blob' });
    expect(await b.manifestByDigest('m/x', d('2'))).toBeUndefined();
    expect(await b.listTags('m/x', '', -1)).toEqual([]);

    await a.addBlob({ repository: 'm/x', digest: d('3'), size: 3 });
    expect(await a.putManifest(manifest('m/x', d('2'), { blobs: [{ digest: d('1'), kind: 'config' }, { digest: d('3'), kind: 'layer' }], tags: ['v1', 'latest'] }))).toBeUndefined();
    expect(await b.manifestByTag('m/x', 'v1')).toEqual({ digest: d('2'), mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 100, artifactType: null, subjectDigest: null, annotations: null });
    expect(await b.unlinkBlob('m/x', d('3'))).toEqual({ heldBy: [d('2')] });
    expect(await b.putManifest(manifest('m/x', d('4'), { children: [d('5')] }))).toEqual({ digest: d('5'), kind: 'manifest' });
  });

  it('lists tags and the catalog in byte order with n/last, and referrers by subject', async () => {
    await a.addBlob({ repository: 'p/q', digest: d('6'), size: 6 });
    await a.putManifest(manifest('p/q', d('7'), { tags: ['b', 'B', 'a', 'a-1', '_'] }));
    expect(await b.listTags('p/q', '', -1)).toEqual(['B', '_', 'a', 'a-1', 'b']);
    expect(await b.listTags('p/q', '_', 2)).toEqual(['a', 'a-1']);
    expect(await b.listTags('unknown/repo', '', -1)).toBeUndefined();
    expect(await b.catalog('', -1)).toEqual(['m/x', 'p/q']); // team/* has blobs, no manifest
    expect(await b.catalog('m/x', 5)).toEqual(['p/q']);

    await a.putManifest(manifest('p/q', d('9'), { subject: d('7'), artifactType: 'application/x.sig' }));
    await a.putManifest(manifest('p/q', d('8'), { subject: d('7') }));
    await a.putManifest(manifest('p/q', d('c'), { subject: d('9') }));
    expect((await b.referrers('p/q', d('7'))).map((m) => [m.digest, m.artifactType])).toEqual([[d('8'), null], [d('9'), 'application/x.sig']]);
    // A manifest goes with its referrers and theirs.
    expect(await b.deleteManifest('p/q', d('7'))).toBe(true);
    expect(await a.manifestByDigest('p/q', d('9'))).toBeUndefined();
    expect(await a.manifestByDigest('p/q', d('c'))).toBeUndefined();
    expect(await a.listTags('p/q', '', -1)).toEqual([]);
    expect(await a.deleteManifest('p/q', d('7'))).toBe(false);
  });

  it('gives an upload to one replica at a time; the other takes over when the lease expires', async () => {
    await a.createUpload('u-1', 'up/load');
    const mine = await a.leaseUpload('u-1', { holder: 'replica-a', ttlMs: 60_000 });
    expect(mine).toMatchObject({ id: 'u-1', repository: 'up/load', offset: 0, hashState: null });
    expect(await b.leaseUpload('u-1', { holder: 'replica-b', ttlMs: 60_000 })).toEqual({ busyWith: 'replica-a' });
    expect(await b.leaseUpload('nope', { holder: 'replica-b', ttlMs: 60_000 })).toBeUndefined();
    await a.releaseUpload('u-1', 'replica-a', { offset: 5_242_880, hashState: null });
    expect(await b.leaseUpload('u-1', { holder: 'replica-b', ttlMs: 1 })).toMatchObject({ offset: 5_242_880 });
    // replica-b dies holding a 1 ms lease: replica-a takes the session over.
    await new Promise((r) => setTimeout(r, 5));
    expect(await a.leaseUpload('u-1', { holder: 'replica-a', ttlMs: 60_000 })).toMatchObject({ offset: 5_242_880 });
    expect(await b.renewUploadLease('u-1', { holder: 'replica-b', ttlMs: 60_000 })).toBe(false);
    expect(await a.renewUploadLease('u-1', { holder: 'replica-a', ttlMs: 60_000 })).toBe(true);
    // A session under a live lease is not expired, whatever its age.
    expect(await b.expireUploads(Date.now() + 1000)).toEqual([]);
    await a.releaseUpload('u-1', 'replica-a');
    expect(await b.existingUploads(['u-1', 'u-2'])).toEqual(new Set(['u-1']));
    expect(await b.expireUploads(Date.now() + 1000)).toEqual(['u-1']);
    expect(await a.getUpload('u-1')).toBeUndefined();
  });

  it('runs one holder of a named lease at a time', async () => {
    expect(await a.acquireLease('scrub', 'replica-a', 60_000)).toBe(true);
    expect(await b.acquireLease('scrub', 'replica-b', 60_000)).toBe(false);
    expect(await a.acquireLease('scrub', 'replica-a', 60_000)).toBe(true); // renewal
    expect((await b.lease('scrub'))?.holder).toBe('replica-a');
    await b.releaseLease('scrub', 'replica-b'); // not b's: nothing happens
    expect(await b.acquireLease('scrub', 'replica-b', 60_000)).toBe(false);
    await a.releaseLease('scrub', 'replica-a');
    expect(await b.acquireLease('scrub', 'replica-b', 60_000)).toBe(true);
  });

  it('collects an unused blob under a GC mark that refuses a push of it until the collector is done', async () => {
    const old = Date.now() + 1000; // everything recorded so far is older than this cutoff
    await a.addBlob({ repository: 'gc/repo', digest: d('d'), size: 13 });
    expect(await a.unlinkBlob('gc/repo', d('d'))).toBe('unlinked');
    expect(await a.acquireLease('gc', 'collector', 60_000)).toBe(true);
    expect(await b.gcRunning()).toBe(true);
    const candidates = await a.unusedBlobs(old, '', 100);
    expect(candidates).toContainEqual({ digest: d('d'), size: 13 });
    expect(await a.deleteUnusedBlobs([d('d')], old, 'collector')).toEqual([{ digest: d('d'), size: 13 }]);
    await expect(b.addBlob({ repository: 'gc/repo', digest: d('d'), size: 13 })).rejects.toBeInstanceOf(BlobMarkedError);
    await a.clearGcMarks([d('d')]);
    await a.releaseLease('gc', 'collector');
    await b.addBlob({ repository: 'gc/repo', digest: d('d'), size: 13 });
    expect(await a.blobInRepository('gc/repo', d('d'))).toBe(13);
    // Touched since the cutoff, linked again: no longer a candidate.
    expect(await a.deleteUnusedBlobs([d('d')], old, 'collector')).toEqual([]);
  });

  it('keeps users, their groups and password changes', async () => {
    expect(await a.addUser({ name: 'alice', passwordHash: 'h1', admin: true, groups: ['ci', 'dev'] })).toBe(true);
    expect(await b.addUser({ name: 'alice', passwordHash: 'h2', admin: false, groups: [] })).toBe(false);
    expect(await b.getUser('alice')).toMatchObject({ name: 'alice', passwordHash: 'h1', admin: true, groups: ['ci', 'dev'] });
    expect(await b.setPassword('alice', 'h3')).toBe(true);
    expect((await a.getUser('alice'))!.passwordHash).toBe('h3');
    expect((await a.listUsers()).map((u) => u.name)).toEqual(['alice']);
    expect(await a.removeUser('alice')).toBe(true);
    expect(await a.getUser('alice')).toBeUndefined();
  });

  it('queues webhook events in order per endpoint, with the change that caused them', async () => {
    await a.addBlob({ repository: 'ev/repo', digest: d('e'), size: 1, events: [{ endpoint: 'hook', eventId: 'e1', payload: '{"n":1}' }] });
    await b.enqueueEvents([{ endpoint: 'hook', eventId: 'e2', payload: '{"n":2}' }, { endpoint: 'gone', eventId: 'e3', payload: '{}' }]);
    expect(await a.eventEndpoints()).toEqual(['gone', 'hook']);
    const head = await a.eventHead('hook', 10);
    expect(head.map((e) => e.eventId)).toEqual(['e1', 'e2']);
    await a.failEvents([head[0]!.seq], 123, 'refused');
    expect((await b.eventHead('hook', 1))[0]).toMatchObject({ eventId: 'e1', attempts: 1, nextAttemptAt: 123 });
    await b.removeEvents([head[0]!.seq]);
    expect(await a.dropEventsExcept(['hook'])).toBe(1);
    expect(await a.queuedEvents()).toBe(1);
  });

  it('reports usage and counts', async () => {
    const usage = await a.usage();
    expect(usage.find((u) => u.repository === 'm/x')).toEqual({ repository: 'm/x', total: 104, unique: 104, blobs: 3 });
    const counts = await a.counts();
    expect(counts.repositories).toBeGreaterThan(3);
    expect(counts.bytes).toBeGreaterThan(0);
  });

  it('answers StoreUnavailableError while PostgreSQL restarts, and works again after it', async () => {
    await a.ping();
    await db.stop();
    await expect(a.ping()).rejects.toBeInstanceOf(StoreUnavailableError);
    await expect(a.addBlob({ repository: 'r/r', digest: d('0'), size: 1 })).rejects.toThrow(/metadata database \(PostgreSQL\) is unavailable/);
    await db.start();
    await a.ping();
    await a.addBlob({ repository: 'r/r', digest: d('0'), size: 1 });
    expect(await b.blobInRepository('r/r', d('0'))).toBe(1);
  });
});
