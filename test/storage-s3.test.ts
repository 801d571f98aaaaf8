// The BlobStore port on a real S3-compatible store (Ceph's RADOS Gateway, see
// test/helpers/s3.ts). Three store instances on one bucket stand for three replicas:
// an upload begun on one is appended to and re-hashed on another and committed on a
// third. Parts are the 5 MiB minimum so that a few MiB cross part boundaries.

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { Readable, PassThrough } from 'node:stream';
import { ListMultipartUploadsCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { e2eTools } from './helpers/images.js';
import { startS3, type S3Store } from './helpers/s3.js';
import { S3BlobStore, type S3Options } from '../storage/s3/blobs.js';
import { IncompleteBodyError, ObjectMissingError, StoreUnavailableError } from '../storage/ports.js';

const MiB = 1024 * 1024;
const digestOf = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** A body that sends `bytes` and then breaks, as a client that goes away. */
function brokenBody(bytes: Buffer): Readable {
  const body = new PassThrough();
  body.write(bytes, () => setImmediate(() => body.destroy(Object.assign(new Error('aborted'), { code: 'ECONNRESET' }))));
  return body;
}

describe.skipIf(!e2eTools('ceph-mon', 'ceph-osd', 'radosgw'))('S3 blob store (Ceph RADOS Gateway)', () => {
  let s3: S3Store;
  let options: S3Options;
  let replicas: S3BlobStore[];

  beforeAll(async () => {
    s3 = await startS3();
    options = { endpoint: s3.endpoint, region: s3.region, bucket: s3.bucket, prefix: 'registry/', accessKey: s3.accessKey, secretKey: s3.secretKey, forcePathStyle: true, partSize: 5 * MiB };
    replicas = [new S3BlobStore(options), new S3BlobStore(options), new S3BlobStore({ ...options, redirect: true })];
    await replicas[0]!.init();
  });
  afterEach(async () => {
    // Nothing a test leaves may linger as an unfinished multipart upload.
    const open = await s3.client.send(new ListMultipartUploadsCommand({ Bucket: s3.bucket }));
    expect(open.Uploads ?? []).toEqual([]);
  });
  afterAll(async () => {
    for (const r of replicas ?? []) r.close();
    await s3?.destroy();
  });

  it('refuses to start on a bucket that does not exist', async () => {
    const store = new S3BlobStore({ ...options, bucket: 'no-such-bucket' });
    await expect(store.init()).rejects.toThrow('storage.s3: bucket no-such-bucket does not exist');
    store.close();
  });

  it('completes an upload begun, appended and committed on three different replicas, re-hashing on each', async () => {
    const [a, b, c] = replicas as [S3BlobStore, S3BlobStore, S3BlobStore];
    const data = randomBytes(13 * MiB + 12345);
    const chunks = [data.subarray(0, 3 * MiB), data.subarray(3 * MiB, 7 * MiB), data.subarray(7 * MiB)];
    const id = randomUUID();
    await a.beginUpload(id);
    const hashA = createHash('sha256');
    expect(await a.appendUpload(id, 0, Readable.from([chunks[0]!]), hashA, { expectedLength: chunks[0]!.length })).toBe(3 * MiB);

    // Replica B has no running hash: it rebuilds it from what the store holds.
    const hashB = createHash('sha256');
    await b.hashUpload(id, 3 * MiB, hashB);
    expect(await b.appendUpload(id, 3 * MiB, Readable.from([chunks[1]!]), hashB)).toBe(4 * MiB);
    expect(await c.uploadSize(id)).toBe(7 * MiB);

    const hashC = createHash('sha256');
    await c.hashUpload(id, 7 * MiB, hashC);
    await c.appendUpload(id, 7 * MiB, Readable.from([chunks[2]!]), hashC);
    const digest = `sha256:${hashC.digest('hex')}`;
    expect(digest).toBe(digestOf(data));
    await c.commitUpload(id, data.length, digest);
    // The upload stays until the registry, its row recorded, removes it.
    expect(await a.uploadSize(id)).toBe(data.length);
    await a.removeUpload(id);

    expect(await a.stat(digest)).toBe(data.length);
    expect(digestOf(await a.read(digest))).toBe(digest);
    expect(await b.uploadSize(id)).toBeNull();
    const listed: string[] = [];
    for await (const d of a.list()) listed.push(d);
    expect(listed).toContain(digest);
    const left = await s3.client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: `registry/uploads/${id}` }));
    expect(left.Contents ?? []).toEqual([]);
  });

  it('discards what a broken request stored past the acknowledged offset', async () => {
    const [a, b] = replicas as [S3BlobStore, S3BlobStore];
    const data = randomBytes(9 * MiB);
    const id = randomUUID();
    await a.beginUpload(id);
    await a.appendUpload(id, 0, Readable.from([data.subarray(0, 2 * MiB)]), createHash('sha256'));
    // 6 MiB of garbage arrive (a full part written past the offset), then the client goes away.
    await expect(a.appendUpload(id, 2 * MiB, brokenBody(randomBytes(6 * MiB)), createHash('sha256'))).rejects.toBeInstanceOf(IncompleteBodyError);
    // A body shorter than announced counts for nothing either.
    await expect(a.appendUpload(id, 2 * MiB, Readable.from([data.subarray(2 * MiB, 3 * MiB)]), createHash('sha256'), { expectedLength: 2 * MiB })).rejects.toBeInstanceOf(IncompleteBodyError);

    // The client resumes at 2 MiB on replica B.
    const hash = createHash('sha256');
    await b.hashUpload(id, 2 * MiB, hash);
    await b.appendUpload(id, 2 * MiB, Readable.from([data.subarray(2 * MiB)]), hash);
    const digest = `sha256:${hash.digest('hex')}`;
    expect(digest).toBe(digestOf(data));
    await b.commitUpload(id, data.length, digest);
    expect(digestOf(await a.read(digest))).toBe(digest);
  });

  it('loses nothing acknowledged when a replica dies after storing a chunk but before its offset was recorded', async () => {
    const [a, b] = replicas as [S3BlobStore, S3BlobStore];
    const data = randomBytes(4 * MiB);
    const id = randomUUID();
    await a.beginUpload(id);
    await a.appendUpload(id, 0, Readable.from([data.subarray(0, MiB)]), createHash('sha256'));
    // Stored up to 2.5 MiB, but the metadata still says 1 MiB (the replica was killed).
    await a.appendUpload(id, MiB, Readable.from([randomBytes(1.5 * MiB)]), createHash('sha256'));
    const hash = createHash('sha256');
    await b.hashUpload(id, MiB, hash);
    await b.appendUpload(id, MiB, Readable.from([data.subarray(MiB)]), hash);
    const digest = `sha256:${hash.digest('hex')}`;
    expect(digest).toBe(digestOf(data));
    await b.commitUpload(id, data.length, digest);
    expect(digestOf(await b.read(digest))).toBe(digest);
  });

  it('commits idempotently by digest and removes a cancelled upload entirely', async () => {
    const [a, b] = replicas as [S3BlobStore, S3BlobStore];
    const data = Buffer.from('same bytes twice');
    const digest = digestOf(data);
    for (const store of [a, b]) {
      const id = randomUUID();
      await store.beginUpload(id);
      await store.appendUpload(id, 0, Readable.from([data]), createHash('sha256'));
      await store.commitUpload(id, data.length, digest);
      await store.removeUpload(id);
    }
    expect(digestOf(await a.read(digest))).toBe(digest);

    const cancelled = randomUUID();
    await a.beginUpload(cancelled);
    await expect(a.beginUpload(cancelled)).rejects.toThrow(/exists/);
    await a.appendUpload(cancelled, 0, Readable.from([randomBytes(6 * MiB)]), createHash('sha256'));
    const ids: string[] = [];
    for await (const u of b.listUploads()) ids.push(u.id);
    expect(ids).toContain(cancelled);
    await b.removeUpload(cancelled);
    expect(await a.uploadSize(cancelled)).toBeNull();
    await expect(a.appendUpload(cancelled, 0, Readable.from([data]), createHash('sha256'))).rejects.toBeInstanceOf(ObjectMissingError);
  });

  it('serves byte ranges, small blobs, deletes and quarantines', async () => {
    const [a] = replicas as [S3BlobStore];
    const data = Buffer.from('0123456789');
    const digest = digestOf(data);
    await a.putBlob(digest, data);
    const reader = await a.open(digest, { start: 2, end: 5 });
    expect(reader.size).toBe(10);
    const out = new PassThrough();
    const got: Buffer[] = [];
    out.on('data', (c: Buffer) => got.push(c));
    await reader.writeTo(out);
    expect(Buffer.concat(got).toString()).toBe('2345');

    const quarantined = await a.quarantine(digest);
    expect(quarantined).toMatch(new RegExp(`^s3://${s3.bucket}/registry/quarantine/sha256/${digest.slice(7)}-\\d+$`));
    expect(await a.stat(digest)).toBeNull();
    await expect(a.open(digest)).rejects.toBeInstanceOf(ObjectMissingError);
    await expect(a.read(digest)).rejects.toBeInstanceOf(ObjectMissingError);
    await a.delete(digest); // already gone: no error
  });

  it('hands out a pre-signed URL only with redirect: true, and it honours Range', async () => {
    const [a, , redirecting] = replicas as [S3BlobStore, S3BlobStore, S3BlobStore];
    const data = Buffer.from('signed content');
    const digest = digestOf(data);
    await a.putBlob(digest, data);
    expect(await a.redirectUrl!(digest, { ttlSeconds: 60 })).toBeUndefined();
    const url = (await redirecting.redirectUrl!(digest, { ttlSeconds: 60 }))!;
    expect(url).toMatch(/X-Amz-Signature=/);
    expect(await (await fetch(url)).text()).toBe('signed content');
    const ranged = await fetch(url, { headers: { Range: 'bytes=7-13' } });
    expect(ranged.status).toBe(206);
    expect(await ranged.text()).toBe('content');
  });

  it('answers StoreUnavailableError with a clear message while the store is down, and works after', async () => {
    const [a] = replicas as [S3BlobStore];
    await a.probeWritable();
    await s3.stopGateway();
    try {
      await expect(a.stat(digestOf(Buffer.from('x')))).rejects.toBeInstanceOf(StoreUnavailableError);
      await expect(a.probeWritable()).rejects.toThrow(/the object store \(S3\) is unavailable/);
    } finally {
      await s3.startGateway();
    }
    await a.probeWritable();
    expect(await a.freeBytes()).toBeUndefined();
  });
});
