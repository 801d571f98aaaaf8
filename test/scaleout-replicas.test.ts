// Berth replicas on one PostgreSQL and one S3 store (Ceph's gateway), all real: any
// request may land on any replica, a replica killed with kill -9 mid-upload loses
// nothing acknowledged, the pool survives a PostgreSQL restart, an S3 outage is a clear
// 503, and `redirect: true` sends clients to a pre-signed URL that skopeo follows.

import { afterAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { rm, writeFile } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { ListMultipartUploadsCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { buildBusyboxImage, e2eTools, skopeo, tempDir } from './helpers/images.js';
import { startBerthProcess } from './helpers/berth-process.js';
import { errorCode, pushBlob, pushImage, sha256, type TestImage } from './helpers/server.js';
import type { RunningServer } from '../src/server/serve.js';
import { replicaServices, scaleOutStorage, sharedServices, startReplicaSet, stopSharedServices, storageEnv } from './helpers/replicas.js';

const MiB = 1024 * 1024;
const MAIN = fileURLToPath(new URL('../dist/src/cli/main.js', import.meta.url));
const run = promisify(execFile);
const digestOf = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

async function startUpload(url: string, repo: string): Promise<string> {
  const res = await fetch(`${url}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  expect(res.status).toBe(202);
  return res.headers.get('location')!;
}

function patch(url: string, location: string, chunk: Buffer, start: number): Promise<Response> {
  return fetch(`${url}${location}`, { method: 'PATCH', body: chunk, headers: { 'Content-Range': `${start}-${start + chunk.length - 1}`, 'Content-Type': 'application/octet-stream' } });
}

describe.skipIf(!replicaServices())('replicas on PostgreSQL + S3', () => {
  afterAll(stopSharedServices, 60_000);

  it('completes a chunked upload whose POST, PATCHes and PUT go to three different replicas', async () => {
    const set = await startReplicaSet({}, 3);
    try {
      const [a, b, c] = set.replicas.map((r) => r.url) as [string, string, string];
      const data = randomBytes(12 * MiB + 777);
      const location = await startUpload(a, 'scale/chunked');
      expect((await patch(b, location, data.subarray(0, 6 * MiB), 0)).status).toBe(202);
      const second = await patch(c, location, data.subarray(6 * MiB, 12 * MiB), 6 * MiB);
      expect(second.status).toBe(202);
      expect(second.headers.get('range')).toBe(`0-${12 * MiB - 1}`);
      const put = await fetch(`${a}${location}?digest=${digestOf(data)}`, { method: 'PUT', body: data.subarray(12 * MiB) });
      expect(put.status).toBe(201);
      expect(put.headers.get('docker-content-digest')).toBe(digestOf(data));

      const got = Buffer.from(await (await fetch(`${b}/v2/scale/chunked/blobs/${digestOf(data)}`)).arrayBuffer());
      expect(digestOf(got)).toBe(digestOf(data));
      // Nothing of the upload is left in the bucket, and no multipart upload is open.
      const { s3 } = await sharedServices();
      const left = await s3.client.send(new ListObjectsV2Command({ Bucket: set.storage.s3!.bucket, Prefix: 'uploads/' }));
      expect(left.Contents ?? []).toEqual([]);
      expect((await s3.client.send(new ListMultipartUploadsCommand({ Bucket: set.storage.s3!.bucket }))).Uploads ?? []).toEqual([]);
    } finally {
      await set.destroy();
    }
  });

  it('loses nothing acknowledged when a replica is killed with kill -9 mid-upload; the client resumes on another', async () => {
    const env = storageEnv(await scaleOutStorage());
    const [a, b] = await Promise.all([startBerthProcess({ env }), startBerthProcess({ env })]);
    try {
      const data = randomBytes(9 * MiB);
      const location = await startUpload(a.url, 'scale/killed');
      const first = await patch(a.url, location, data.subarray(0, 3 * MiB), 0);
      expect(first.status).toBe(202);

      // The next chunk is half sent to replica A when A dies.
      let sent!: () => void;
      const halfSent = new Promise<void>((resolve) => (sent = resolve));
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(data.subarray(3 * MiB, 5 * MiB));
          sent();
        },
      });
      const cut = fetch(`${a.url}${location}`, {
        method: 'PATCH', body, duplex: 'half', headers: { 'Content-Range': `${3 * MiB}-${6 * MiB - 1}` },
      } as RequestInit).catch((err: Error) => err);
      await halfSent;
      await new Promise((r) => setTimeout(r, 200)); // let the 2 MiB reach A
      await a.kill9();
      expect(await cut).toBeInstanceOf(Error);

      // B knows the acknowledged offset and takes the upload over at once (A's pid is gone).
      const status = await fetch(`${b.url}${location}`);
      expect(status.status).toBe(204);
      expect(status.headers.get('range')).toBe(`0-${3 * MiB - 1}`);
      expect((await patch(b.url, location, data.subarray(3 * MiB), 3 * MiB)).status).toBe(202);
      const put = await fetch(`${b.url}${location}?digest=${digestOf(data)}`, { method: 'PUT' });
      expect(put.status).toBe(201);
      const got = Buffer.from(await (await fetch(`${b.url}/v2/scale/killed/blobs/${digestOf(data)}`)).arrayBuffer());
      expect(digestOf(got)).toBe(digestOf(data));
    } finally {
      await a.destroy();
      await b.destroy();
    }
  });

  it('answers 503 while PostgreSQL restarts and works after it, without crashing', async () => {
    const set = await startReplicaSet();
    try {
      const digest = await pushBlob(set.url, 'scale/pg', 'kept across a database restart');
      const { db } = await sharedServices();
      await db.stop();
      try {
        for (const replica of set.replicas) {
          const res = await fetch(`${replica.url}/v2/scale/pg/blobs/${digest}`, { method: 'HEAD' });
          expect(res.status).toBe(503);
          expect(res.headers.get('retry-after')).toBe('5');
        }
        const push = await fetch(`${set.url}/v2/scale/pg/blobs/uploads/?digest=${sha256('x')}`, { method: 'POST', body: 'x' });
        expect(push.status).toBe(503);
        const body = (await push.json()) as { errors: { code: string; message: string }[] };
        expect(body.errors[0]).toMatchObject({ code: 'UNAVAILABLE', message: 'the metadata database (PostgreSQL) is unavailable: try again shortly' });
        // The replicas leave the load balancer's rotation (Kubernetes readiness probe).
        expect((await fetch(`${set.replicas[0]!.url}/readyz`)).status).toBe(503);
      } finally {
        await db.start();
      }
      expect((await fetch(`${set.replicas[0]!.url}/readyz`)).status).toBe(200);
      for (const replica of set.replicas) {
        expect((await fetch(`${replica.url}/v2/scale/pg/blobs/${digest}`, { method: 'HEAD' })).status).toBe(200);
      }
      expect(await pushBlob(set.url, 'scale/pg', 'pushed after the restart')).toMatch(/^sha256:/);
    } finally {
      await set.destroy();
    }
  });

  it('answers 503 with a clear message while the S3 store is down, never 500', async () => {
    const set = await startReplicaSet();
    try {
      const digest = await pushBlob(set.url, 'scale/s3', 'kept across an S3 outage');
      const { s3 } = await sharedServices();
      await s3.stopGateway();
      try {
        const get = await fetch(`${set.url}/v2/scale/s3/blobs/${digest}`);
        expect(get.status).toBe(503);
        const body = (await get.json()) as { errors: { code: string; message: string }[] };
        expect(body.errors[0]).toMatchObject({ code: 'UNAVAILABLE', message: 'the object store (S3) is unavailable: try again shortly' });
        const push = await fetch(`${set.url}/v2/scale/s3/blobs/uploads/?digest=${sha256('y')}`, { method: 'POST', body: 'y' });
        expect(push.status).toBe(503);
        expect(await errorCode(push)).toBe('UNAVAILABLE');
        expect((await fetch(`${set.replicas[1]!.url}/readyz`)).status).toBe(503);
      } finally {
        await s3.startGateway();
      }
      expect((await fetch(`${set.replicas[1]!.url}/readyz`)).status).toBe(200);
      expect(await (await fetch(`${set.url}/v2/scale/s3/blobs/${digest}`)).text()).toBe('kept across an S3 outage');
    } finally {
      await set.destroy();
    }
  });

  it('keeps every blob of every kept manifest while one replica pushes and deletes and another collects', async () => {
    const set = await startReplicaSet({ touchIntervalMs: 50 });
    try {
      const [pusher, collector] = set.replicas as [RunningServer, RunningServer];
      let pushing = true;
      let freed = 0;
      const collections = (async () => {
        let runs = 0;
        while (pushing || runs < 3) {
          freed += (await collector.registry.gc.collect({ graceMs: 500, settleMs: 0 })).blobsDeleted;
          runs++;
        }
        return runs;
      })();
      const kept: TestImage[] = [];
      let refused = 0;
      for (let i = 0; i < 12; i++) {
        try {
          const img = await pushImage(pusher.url, 'scale/gc', `t${i}`, `image ${i} pushed during collections`);
          // Every other image is deleted again: its blobs are the collector's work.
          if (i % 2) expect((await fetch(`${pusher.url}/v2/scale/gc/manifests/${img.digest}`, { method: 'DELETE' })).status).toBe(202);
          else kept.push(img);
        } catch (err) {
          // A blob collected between its upload and the manifest that references it is
          // MANIFEST_BLOB_UNKNOWN, and the client pushes it again: refused, never lost.
          expect(String(err)).toMatch(/MANIFEST_BLOB_UNKNOWN/);
          refused++;
        }
      }
      pushing = false;
      expect(await collections).toBeGreaterThanOrEqual(3);
      // One more run once the grace period of the last deletions is over.
      await new Promise((r) => setTimeout(r, 600));
      freed += (await collector.registry.gc.collect({ graceMs: 500, settleMs: 0 })).blobsDeleted;
      expect(freed).toBeGreaterThan(0);
      expect(kept.length).toBeGreaterThan(0);
      for (const img of kept) {
        for (const blob of [img.config, ...img.layers]) {
          const res = await fetch(`${set.url}/v2/scale/gc/blobs/${sha256(blob)}`);
          expect(res.status).toBe(200);
          expect(Buffer.from(await res.arrayBuffer()).equals(blob)).toBe(true);
        }
        expect((await fetch(`${set.url}/v2/scale/gc/manifests/${img.digest}`)).status).toBe(200);
      }
      const scrub = await pusher.registry.scrub.run();
      expect(scrub).toMatchObject({ missingFiles: [], wrongSize: [], corrupted: [], brokenManifests: [], danglingTags: [] });
    } finally {
      await set.destroy();
    }
  });

  it('runs gc, retention, scrub, du and user with --config on PostgreSQL + S3, while the replicas serve', async () => {
    const set = await startReplicaSet();
    const work = await tempDir('berth-scaleout-cli-');
    try {
      const config = join(work, 'berth.yaml');
      await writeFile(config, stringify({ data: join(work, 'unused'), database: set.storage.database, storage: { s3: set.storage.s3 } }));
      const berth = async (...args: string[]) => (await run(process.execPath, [MAIN, ...args, '--config', config], { env: { ...process.env, BERTH_CONFIG: '' } })).stdout;

      const kept = await pushImage(set.url, 'cli/repo', 'v1', 'an image the repository keeps');
      const dropped = await pushBlob(set.url, 'cli/repo', 'a blob the repository lets go');
      expect((await fetch(`${set.url}/v2/cli/repo/blobs/${dropped}`, { method: 'DELETE' })).status).toBe(202);

      const du = JSON.parse(await berth('du', '--json')) as { storedBlobs: number; repositories: { repository: string }[] };
      expect(du.storedBlobs).toBe(5); // config, two layers, manifest, and the dropped blob
      expect(du.repositories.map((r) => r.repository)).toEqual(['cli/repo']);

      const gc = JSON.parse(await berth('gc', '--grace', '0s', '--json')) as { blobsDeleted: number };
      expect(gc.blobsDeleted).toBe(1);
      for (const layer of kept.layers) expect((await fetch(`${set.replicas[1]!.url}/v2/cli/repo/blobs/${sha256(layer)}`)).status).toBe(200);
      const { s3 } = await sharedServices();
      const objects = await s3.client.send(new ListObjectsV2Command({ Bucket: set.storage.s3!.bucket, Prefix: 'blobs/' }));
      expect((objects.Contents ?? []).map((o) => o.Key)).not.toContain(`blobs/sha256/${dropped.slice(7, 9)}/${dropped.slice(7)}`);
      expect(objects.Contents).toHaveLength(4);

      const scrub = JSON.parse(await berth('scrub', '--json')) as { checked: number; missingFiles: string[]; corrupted: unknown[] };
      expect(scrub).toMatchObject({ checked: 4, missingFiles: [], corrupted: [] });
      expect(await berth('retention', '--keep-last', '1', '--dry-run', '--json')).toBeTruthy();

      expect(await berth('user', 'add', 'alice')).toMatch(/alice/); // prints the random password
      const users = JSON.parse(await berth('user', 'ls', '--json')) as { name: string }[];
      expect(users.map((u) => u.name)).toEqual(['alice']);
    } finally {
      await set.destroy();
      await rm(work, { recursive: true, force: true });
    }
  });

  it.skipIf(!e2eTools('skopeo', 'umoci', 'busybox'))('with redirect: true answers blob GETs with 307 to a pre-signed URL, which skopeo follows', async () => {
    const set = await startReplicaSet({}, 2, { redirect: true });
    const work = await tempDir('berth-redirect-');
    try {
      const img = await buildBusyboxImage(join(work, 'in'));
      const host = set.url.slice('http://'.length);
      await skopeo('copy', '--quiet', '--dest-tls-verify=false', img.skopeoRef, `docker://${host}/scale/redirect:v1`);
      const layer = img.manifest.layers[0]!.digest;
      const res = await fetch(`${set.url}/v2/scale/redirect/blobs/${layer}`, { redirect: 'manual' });
      expect(res.status).toBe(307);
      const location = res.headers.get('location')!;
      expect(location.startsWith(`${set.storage.s3!.endpoint}/`)).toBe(true);
      expect(location).toMatch(/X-Amz-Signature=/);
      const followed = Buffer.from(await (await fetch(location)).arrayBuffer());
      expect(digestOf(followed)).toBe(layer);

      await skopeo('copy', '--quiet', '--src-tls-verify=false', `docker://${host}/scale/redirect:v1`, `oci:${join(work, 'out')}:v1`);
      const out = await skopeo('inspect', '--raw', `oci:${join(work, 'out')}:v1`);
      expect(digestOf(Buffer.from(out))).toBe(img.digest);
    } finally {
      await set.destroy();
      await rm(work, { recursive: true, force: true });
    }
  });
});
