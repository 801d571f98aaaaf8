// What a user who may push can do to the registry, against real servers: manifests
// whose descriptors lie about sizes or point elsewhere with `urls`, a referrers list too
// large for one response, and a flood of large manifests against the manifest cache
// (measured in a separate `berth serve` process).

import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBerthProcess, type BerthProcess } from './helpers/berth-process.js';
import { errorCode, imageManifest, pushBlob, putManifest, sha256, startTestServer, type TestServer } from './helpers/server.js';

const run = promisify(execFile);
const MAIN = fileURLToPath(new URL('../dist/src/cli/main.js', import.meta.url));
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';
const FOREIGN_LAYER = 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip';
const DOCKER_FOREIGN_LAYER = 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip';

function put(server: TestServer, repo: string, reference: string, body: Buffer | string): Promise<Response> {
  return fetch(`${server.url}/v2/${repo}/manifests/${reference}`, { method: 'PUT', headers: { 'content-type': OCI_MANIFEST }, body });
}

function manifestWith(config: Buffer, layers: { mediaType: string; digest: string; size: number; urls?: string[] }[], extra = {}): string {
  return JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
    layers,
    ...extra,
  });
}

describe('descriptors a pusher controls', () => {
  let server: TestServer;
  let config: Buffer;
  beforeAll(async () => {
    server = await startTestServer();
    config = Buffer.from('{"architecture":"amd64","os":"linux"}');
    await pushBlob(server.url, 'abuse/sizes', config);
    await pushBlob(server.url, 'abuse/urls', config);
  });
  afterAll(() => server?.destroy());

  it("refuses a descriptor whose size is not the stored blob's (MANIFEST_INVALID)", async () => {
    const layer = Buffer.alloc(100, 'l');
    const digest = await pushBlob(server.url, 'abuse/sizes', layer);
    for (const size of [1, 101]) {
      const res = await put(server, 'abuse/sizes', `size-${size}`, manifestWith(config, [{ mediaType: LAYER, digest, size }]));
      expect(res.status, `size ${size}`).toBe(400);
      const body = (await res.json()) as { errors: { code: string; message: string }[] };
      expect(body.errors[0]!.code).toBe('MANIFEST_INVALID');
      expect(body.errors[0]!.message).toMatch(/size/);
    }
    const wrongConfig = JSON.parse(manifestWith(config, [{ mediaType: LAYER, digest, size: 100 }]));
    wrongConfig.config.size = 5;
    expect((await put(server, 'abuse/sizes', 'config-size', JSON.stringify(wrongConfig))).status).toBe(400);
    expect((await put(server, 'abuse/sizes', 'right', manifestWith(config, [{ mediaType: LAYER, digest, size: 100 }]))).status).toBe(201);
  });

  it("refuses an index whose child descriptor's size is not the child manifest's", async () => {
    const layer = Buffer.from('index child layer');
    await pushBlob(server.url, 'abuse/sizes', layer);
    const child = imageManifest(config, [layer]);
    await putManifest(server.url, 'abuse/sizes', 'child', child);
    const index = (size: number) =>
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        manifests: [{ mediaType: OCI_MANIFEST, digest: sha256(child), size }],
      });
    const res = await fetch(`${server.url}/v2/abuse/sizes/manifests/index-bad`, {
      method: 'PUT',
      headers: { 'content-type': 'application/vnd.oci.image.index.v1+json' },
      body: index(child.length + 1),
    });
    expect(res.status).toBe(400);
    expect(await errorCode(res)).toBe('MANIFEST_INVALID');
  });

  it('lets only non-distributable layers carry urls without the blob', async () => {
    const absent = sha256('a layer nobody pushed');
    const ordinary = await put(server, 'abuse/urls', 'ordinary', manifestWith(config, [{ mediaType: LAYER, digest: absent, size: 21, urls: ['x'] }]));
    expect(ordinary.status).toBe(400);
    expect(await errorCode(ordinary)).toBe('MANIFEST_BLOB_UNKNOWN');
    const badUrl = await put(server, 'abuse/urls', 'bad-url', manifestWith(config, [{ mediaType: FOREIGN_LAYER, digest: absent, size: 21, urls: ['x'] }]));
    expect(badUrl.status).toBe(400);
    expect(await errorCode(badUrl)).toBe('MANIFEST_INVALID');
    for (const mediaType of [FOREIGN_LAYER, DOCKER_FOREIGN_LAYER]) {
      const res = await put(server, 'abuse/urls', mediaType.includes('docker') ? 'docker' : 'oci', manifestWith(config, [{ mediaType, digest: absent, size: 21, urls: ['https://example.com/layer.tar.gz'] }]));
      expect(res.status, mediaType).toBe(201);
    }
  });

  it('keeps a pushed non-distributable layer through garbage collection while its manifest stays', async () => {
    const layer = Buffer.from('a foreign layer that was pushed anyway');
    const digest = await pushBlob(server.url, 'abuse/urls', layer);
    const body = manifestWith(config, [{ mediaType: FOREIGN_LAYER, digest, size: layer.length, urls: ['https://example.com/foreign.tar.gz'] }]);
    expect((await put(server, 'abuse/urls', 'pushed-foreign', body)).status).toBe(201);
    await run(process.execPath, [MAIN, 'gc', '--data', server.dataDir, '--grace', '0s']);
    const res = await fetch(`${server.url}/v2/abuse/urls/blobs/${digest}`);
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer()).equals(layer)).toBe(true);
  });
});

describe('a referrers list too large for one response', () => {
  let server: TestServer;
  const subject = { mediaType: OCI_MANIFEST, digest: '', size: 0 };
  const referrers: string[] = [];
  beforeAll(async () => {
    server = await startTestServer();
    const config = Buffer.from('{}');
    await pushBlob(server.url, 'abuse/referrers', config);
    const base = Buffer.from(manifestWith(config, []));
    await putManifest(server.url, 'abuse/referrers', 'subject', base);
    Object.assign(subject, { digest: sha256(base), size: base.length });
    // 12 referrers of 1 MiB of annotations each: 12 MiB of descriptors in all.
    for (let i = 0; i < 12; i++) {
      const body = Buffer.from(
        manifestWith(config, [], { artifactType: 'application/vnd.example.big', subject, annotations: { filler: String(i).padEnd(1 << 20, 'x') } }),
      );
      await putManifest(server.url, 'abuse/referrers', sha256(body), body);
      referrers.push(sha256(body));
    }
  });
  afterAll(() => server?.destroy());

  it('pages it with Link, each page bounded, every referrer listed once', async () => {
    const seen: string[] = [];
    let next: string | null = `/v2/abuse/referrers/referrers/${subject.digest}?artifactType=application/vnd.example.big`;
    let pages = 0;
    while (next) {
      const res = await fetch(new URL(next, server.url));
      expect(res.status).toBe(200);
      const text = await res.text();
      expect(text.length).toBeLessThanOrEqual(4 * 1024 * 1024 + 64 * 1024);
      const index = JSON.parse(text) as { manifests: { digest: string }[] };
      seen.push(...index.manifests.map((m) => m.digest));
      expect(res.headers.get('oci-filters-applied')).toBe('artifactType');
      const link = res.headers.get('link');
      next = link ? /^<([^>]+)>;\s*rel="next"$/.exec(link)![1]! : null;
      pages++;
    }
    console.log('referrers pages for 12 MiB of descriptors:', pages);
    expect(pages).toBeGreaterThan(1);
    expect(seen.sort()).toEqual([...referrers].sort());
  });
});

describe('the manifest cache under large manifests', () => {
  let berth: BerthProcess;
  beforeAll(async () => {
    berth = await startBerthProcess();
  });
  afterAll(() => berth?.destroy());

  const rssMB = () => Math.round(Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${berth.child.pid}/status`, 'utf8'))![1]) / 1024);

  it('holds a bounded number of bytes: 40 manifests of 4 MiB do not stay in memory', async () => {
    const config = Buffer.from('{}');
    const digest = sha256(config);
    const res = await fetch(`${berth.url}/v2/abuse/cache/blobs/uploads/?digest=${digest}`, { method: 'POST', body: config });
    expect(res.status).toBe(201);
    const before = rssMB();
    for (let i = 0; i < 40; i++) {
      const body = Buffer.from(
        manifestWith(config, [], { annotations: { filler: String(i).padEnd(4 * 1024 * 1024 - 400, 'x') } }),
      );
      const put = await fetch(`${berth.url}/v2/abuse/cache/manifests/m${i}`, { method: 'PUT', headers: { 'content-type': OCI_MANIFEST }, body });
      expect(put.status).toBe(201);
      await (await fetch(`${berth.url}/v2/abuse/cache/manifests/m${i}`)).arrayBuffer();
    }
    const after = rssMB();
    console.log(`server RSS before ${before} MB, after 40 manifests of 4 MiB pushed and pulled ${after} MB`);
    expect(after - before).toBeLessThan(100);
  });
});
