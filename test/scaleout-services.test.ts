// The real services the scale-out drivers run on, started by the tests' own helpers:
// PostgreSQL 15 and Ceph's S3 gateway on loopback. These tests pin down what the drivers
// rely on (a restart, the S3 calls and settings that work on Ceph), so a broken service
// setup fails here, with a clear message, rather than deep in a driver test.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import pg from 'pg';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  PutObjectCommand,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { e2eTools } from './helpers/images.js';
import { startPostgres, type Postgres } from './helpers/postgres.js';
import { startS3, type S3Store } from './helpers/s3.js';

const MiB = 1024 * 1024;

describe.skipIf(!e2eTools('postgres'))('PostgreSQL test service', () => {
  let db: Postgres;
  let startMs = 0;
  beforeAll(async () => {
    const t0 = performance.now();
    db = await startPostgres();
    startMs = performance.now() - t0;
  });
  afterAll(() => db?.destroy());

  it('starts on loopback and gives each caller its own database', async () => {
    process.stderr.write(`PostgreSQL started in ${startMs.toFixed(0)} ms\n`);
    const [a, b] = [await db.createDatabase(), await db.createDatabase()];
    expect(a).not.toBe(b);
    expect(a).toMatch(/^postgres:\/\/postgres@127\.0\.0\.1:\d+\/berth_/);
    const client = new pg.Client({ connectionString: a });
    await client.connect();
    const { rows } = await client.query<{ db: string; addr: string }>('SELECT current_database() AS db, host(inet_server_addr()) AS addr');
    await client.end();
    expect(rows[0]).toEqual({ db: a.split('/').pop(), addr: '127.0.0.1' });
  });

  it('stops and starts again with its data, cutting open sessions', async () => {
    const url = await db.createDatabase();
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    await client.query('CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)');
    const cut = new Promise<Error>((resolve) => client.on('error', resolve));
    await db.stop();
    expect((await cut).message).toMatch(/terminat/);
    await expect(new pg.Client({ connectionString: url }).connect()).rejects.toThrow(/ECONNREFUSED/);
    await db.start();
    const again = new pg.Client({ connectionString: url });
    await again.connect();
    expect((await again.query('SELECT v FROM kept')).rows).toEqual([{ v: 42 }]);
    await again.end();
  });
});

describe.skipIf(!e2eTools('ceph-mon', 'ceph-osd', 'radosgw'))('S3 test service (Ceph RADOS Gateway)', () => {
  let s3: S3Store;
  let startMs = 0;
  beforeAll(async () => {
    const t0 = performance.now();
    s3 = await startS3();
    startMs = performance.now() - t0;
  });
  afterAll(() => s3?.destroy());

  it('stores an object streamed without a checksum and serves byte ranges of it', async () => {
    process.stderr.write(`Ceph (mon, memstore OSD, radosgw) started in ${startMs.toFixed(0)} ms\n`);
    const body = Buffer.from('0123456789abcdef');
    await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: 'a/b', Body: body, ContentLength: body.length }));
    const ranged = await s3.client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: 'a/b', Range: 'bytes=4-9' }));
    expect(await ranged.Body!.transformToString()).toBe('456789');
    expect(ranged.ContentRange).toBe('bytes 4-9/16');
  });

  it('completes a multipart upload of a 5 MiB part and a short last part; its ETag comes from HEAD', async () => {
    const parts = [Buffer.alloc(5 * MiB, 1), Buffer.from('tail')];
    const { UploadId } = await s3.client.send(new CreateMultipartUploadCommand({ Bucket: s3.bucket, Key: 'multi' }));
    const etags: string[] = [];
    for (const [i, part] of parts.entries()) {
      const res = await s3.client.send(new UploadPartCommand({ Bucket: s3.bucket, Key: 'multi', UploadId, PartNumber: i + 1, Body: part, ContentLength: part.length }));
      etags.push(res.ETag!);
    }
    await s3.client.send(
      new CompleteMultipartUploadCommand({ Bucket: s3.bucket, Key: 'multi', UploadId, MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) } }),
    );
    const head = await s3.client.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: 'multi' }));
    expect(head.ContentLength).toBe(5 * MiB + 4);
    expect(head.ETag).toMatch(/-2"$/);
    const got = Buffer.from(await (await s3.client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: 'multi' }))).Body!.transformToByteArray());
    expect(createHash('sha256').update(got).digest('hex')).toBe(createHash('sha256').update(Buffer.concat(parts)).digest('hex'));
  });

  it('forgets an aborted multipart upload', async () => {
    const { UploadId } = await s3.client.send(new CreateMultipartUploadCommand({ Bucket: s3.bucket, Key: 'aborted' }));
    const listed = async () => (await s3.client.send(new ListMultipartUploadsCommand({ Bucket: s3.bucket }))).Uploads ?? [];
    expect((await listed()).map((u) => u.UploadId)).toContain(UploadId);
    await s3.client.send(new AbortMultipartUploadCommand({ Bucket: s3.bucket, Key: 'aborted', UploadId }));
    expect(await listed()).toEqual([]);
  });

  it('serves a pre-signed GET without credentials', async () => {
    await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: 'signed', Body: 'hello', ContentLength: 5 }));
    const url = await getSignedUrl(s3.client, new GetObjectCommand({ Bucket: s3.bucket, Key: 'signed' }), { expiresIn: 60 });
    expect(await (await fetch(url)).text()).toBe('hello');
    expect((await fetch(url.replace(/X-Amz-Signature=[0-9a-f]+/, 'X-Amz-Signature=00'))).status).toBe(403);
  });

  it('keeps its objects across a gateway outage', async () => {
    await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: 'durable', Body: 'kept', ContentLength: 4 }));
    await s3.stopGateway();
    await expect(fetch(`${s3.endpoint}/`)).rejects.toThrow();
    await s3.startGateway();
    const res = await s3.client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: 'durable' }));
    expect(await res.Body!.transformToString()).toBe('kept');
  });
});
