// The pull-through cache (src/proxy) against real upstreams on loopback, proxied at
// once: the reference registry (docker-registry, anonymous) behind a recording proxy
// that counts its requests, a second Berth with token auth (credentials, and anonymous
// pull), a Berth with Basic auth, and a proxy that flips a byte of every blob.

import { execFile } from 'node:child_process';
import { readdir, readFile, rm } from 'node:fs/promises';
import { promisify } from 'node:util';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../src/server/logger.js';
import type { UpstreamConfig } from '../src/proxy/config.js';
import { createUser } from '../auth/accounts.js';
import { buildBusyboxImage, buildMultiPlatformIndex, e2eTools, skopeo, tempDir, type BuiltManifestImage } from './helpers/images.js';
import { startRecordingProxy, startReferenceRegistry, type RecordingProxy, type ReferenceRegistry } from './helpers/reference-registry.js';
import { errorCode, imageManifest, pushBlob, pushImage, putManifest, sha256, startTestServer, startWorkersTestServer, type TestServer } from './helpers/server.js';

const run = promisify(execFile);
const hasTools = e2eTools('docker-registry', 'skopeo', 'umoci', 'busybox');

describe.skipIf(!hasTools)('pull-through cache', () => {
  let work: string;
  let reference: ReferenceRegistry;
  /** In front of the reference registry: counts requests, can go down. */
  let hub: RecordingProxy;
  /** In front of the reference registry: flips a byte of every blob. */
  let corrupting: RecordingProxy;
  /** In front of the reference registry: holds every blob body half-way until released. */
  let slow: RecordingProxy;
  let tokenUpstream: TestServer;
  let tokenRecorder: RecordingProxy;
  let basicUpstream: TestServer;
  let cache: TestServer;
  let cacheHost: string;
  let busybox: BuiltManifestImage;
  /** The cache's log lines. */
  const logs = new PassThrough();
  let logText = '';
  logs.on('data', (d: Buffer) => (logText += d.toString()));

  const creds = (user: string) => ['--dest-creds', `${user}:${user}-password`];

  beforeAll(async () => {
    work = await tempDir('berth-proxy-');
    reference = await startReferenceRegistry();
    hub = await startRecordingProxy(reference.url, { extraHeaders: { 'RateLimit-Limit': '100;w=21600', 'RateLimit-Remaining': '76;w=21600' } });
    corrupting = await startRecordingProxy(reference.url, { corruptBlobs: true });
    slow = await startRecordingProxy(reference.url, { stallBlobsAfterBytes: 1 << 20 });
    tokenUpstream = await startTestServer({ auth: { mode: 'token', anonymousPull: true } });
    tokenRecorder = await startRecordingProxy(tokenUpstream.url);
    basicUpstream = await startTestServer({ auth: { mode: 'basic' } });
    for (const server of [tokenUpstream, basicUpstream]) {
      await createUser(server.registry.users, { name: 'root', password: 'root-password', admin: true, groups: [] });
    }
    busybox = await buildBusyboxImage(join(work, 'layout'), { tag: '1.36' });
    await skopeo('copy', '--quiet', '--dest-tls-verify=false', busybox.skopeoRef, `docker://${reference.host}/library/busybox:1.36`);
    for (const server of [tokenUpstream, basicUpstream]) {
      const host = server.url.replace('http://', '');
      await skopeo('copy', '--quiet', '--dest-tls-verify=false', ...creds('root'), busybox.skopeoRef, `docker://${host}/team/busybox:1.36`);
    }
    cache = await startTestServer({
      logger: createLogger({ level: 'debug', destination: logs }),
      proxy: [
        { prefix: 'docker.io', url: hub.url, tagTtl: 3_600_000 },
        { prefix: 'flaky.example', url: hub.url, tagTtl: 1000 },
        { prefix: 'ghcr.io', url: tokenRecorder.url, username: 'root', password: 'root-password', tagTtl: 3_600_000 },
        { prefix: 'anon.example', url: tokenUpstream.url, tagTtl: 3_600_000 },
        { prefix: 'basic.example', url: basicUpstream.url, username: 'root', password: 'root-password', tagTtl: 3_600_000 },
        { prefix: 'wrong.example', url: tokenUpstream.url, username: 'root', password: 'not-the-password', tagTtl: 3_600_000 },
        { prefix: 'corrupt.example', url: corrupting.url, tagTtl: 3_600_000 },
        { prefix: 'slow.example', url: slow.url, tagTtl: 3_600_000 },
        { prefix: 'quick.example', url: reference.url, tagTtl: 1000 },
        { prefix: 'small.example', url: reference.url, tagTtl: 3_600_000, maxBytes: 3500 },
        { prefix: 'idle.example', url: reference.url, tagTtl: 3_600_000, idleFor: 1000 },
        { prefix: 'tiny.example', url: reference.url, tagTtl: 3_600_000, maxBytes: 100 },
      ],
    });
    cacheHost = cache.url.replace('http://', '');
  }, 120_000);

  afterAll(async () => {
    await cache?.destroy();
    for (const p of [hub, corrupting, slow, tokenRecorder]) await p?.close();
    await tokenUpstream?.destroy();
    await basicUpstream?.destroy();
    await reference?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  /** Copies `ref` (a docker:// reference) into a fresh OCI layout; returns the directory. */
  async function pullToLayout(ref: string, ...args: string[]): Promise<string> {
    const dir = await tempDir('berth-proxy-pull-');
    await skopeo('copy', '--quiet', '--src-tls-verify=false', ...args, ref, `oci:${dir}:x`);
    return dir;
  }

  /** Every file of a layout, by relative path. */
  async function layoutFiles(dir: string): Promise<Map<string, Buffer>> {
    const out = new Map<string, Buffer>();
    for (const name of await readdir(join(dir, 'blobs', 'sha256'))) out.set(name, await readFile(join(dir, 'blobs', 'sha256', name)));
    out.set('index.json', await readFile(join(dir, 'index.json')));
    return out;
  }

  it('serves a first pull from each upstream byte for byte as the upstream has it (skopeo)', async () => {
    const direct = await layoutFiles(await pullToLayout(`docker://${reference.host}/library/busybox:1.36`));
    for (const ref of ['docker.io/library/busybox:1.36', 'ghcr.io/team/busybox:1.36', 'anon.example/team/busybox:1.36', 'basic.example/team/busybox:1.36']) {
      const cached = await layoutFiles(await pullToLayout(`docker://${cacheHost}/${ref}`));
      expect([...cached.keys()].sort(), ref).toEqual([...direct.keys()].sort());
      for (const [name, bytes] of direct) expect(cached.get(name)!.equals(bytes), `${ref}: ${name}`).toBe(true);
    }
    // The credential token flow: the token Berth saw the proxy's requests with a token.
    expect(tokenRecorder.requests.some((r) => r.startsWith('GET /v2/team/busybox/manifests/1.36'))).toBe(true);
  }, 120_000);

  it('says so when the upstream refuses the proxy\'s credentials', async () => {
    const res = await fetch(`${cache.url}/v2/wrong.example/team/busybox/manifests/1.36`);
    expect(res.status).toBe(502);
    const body = (await res.json()) as { errors: { code: string; message: string }[] };
    expect(body.errors[0]!.message).toContain(`the upstream wrong.example (${tokenUpstream.url}) could not be asked for manifest team/busybox: 401: access refused to the proxy's credentials`);
    expect(body.errors[0]!.message).not.toContain('not-the-password');
  });

  it('serves cached images with the upstream down, and names the upstream for what it never cached', async () => {
    await pullToLayout(`docker://${cacheHost}/docker.io/library/busybox:1.36`);
    await pullToLayout(`docker://${cacheHost}/flaky.example/library/busybox:1.36`);
    const before = hub.requests.length;
    hub.setDown(true);
    try {
      const again = await layoutFiles(await pullToLayout(`docker://${cacheHost}/docker.io/library/busybox:1.36`));
      expect(again.size).toBeGreaterThan(2);
      expect(hub.requests.length).toBe(before);
      const res = await fetch(`${cache.url}/v2/docker.io/library/never-cached/manifests/latest`);
      expect(res.status).toBe(502);
      const body = (await res.json()) as { errors: { code: string; message: string }[] };
      expect(body.errors[0]!.message).toContain(`the upstream docker.io (${hub.url}) could not be asked for manifest library/never-cached`);
      expect(body.errors[0]!.message).toMatch(/ECONNRESET|UND_ERR_SOCKET|ECONNREFUSED|other side closed/);
      // flaky.example re-checks tags after 1s: past it, the tag is served stale, logged and counted.
      await sleep(1100);
      await pullToLayout(`docker://${cacheHost}/flaky.example/library/busybox:1.36`);
      expect(logText).toMatch(/upstream unavailable: serving a tag past its tagTtl from the cache/);
      const metrics = await (await fetch(`${cache.url}/metrics`)).text();
      expect(metrics).toMatch(/berth_proxy_stale_served_total\{upstream="flaky.example"\} [1-9]/);
    } finally {
      hub.setDown(false);
    }
  }, 60_000);

  it('sees a tag moved upstream after tagTtl and not before', async () => {
    const one = await pushImage(reference.url, 'moving/app', 'v1', 'first');
    const get = async () => (await fetch(`${cache.url}/v2/quick.example/moving/app/manifests/v1`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } })).headers.get('docker-content-digest');
    expect(await get()).toBe(one.digest);
    const two = await pushImage(reference.url, 'moving/app', 'v1', 'second');
    expect(await get()).toBe(one.digest);
    await sleep(1100); // tagTtl is 1s: time itself is the event here
    expect(await get()).toBe(two.digest);
  });

  it('makes one upstream fetch per blob for ten concurrent pulls of an uncached image', async () => {
    const image = await pushImage(reference.url, 'library/concurrent', 'latest', 'ten-clients');
    const pull = async () => {
      const m = await fetch(`${cache.url}/v2/docker.io/library/concurrent/manifests/latest`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
      const manifest = Buffer.from(await m.arrayBuffer());
      expect(sha256(manifest)).toBe(image.digest);
      const parsed = JSON.parse(manifest.toString()) as { config: { digest: string }; layers: { digest: string }[] };
      for (const d of [parsed.config, ...parsed.layers].map((x) => x.digest)) {
        const b = await fetch(`${cache.url}/v2/docker.io/library/concurrent/blobs/${d}`);
        expect(b.status).toBe(200);
        expect(sha256(Buffer.from(await b.arrayBuffer()))).toBe(d);
      }
    };
    await Promise.all(Array.from({ length: 10 }, pull));
    const gets = (path: string) => hub.requests.filter((r) => r === `GET /v2/library/concurrent/${path}`).length;
    expect(gets('manifests/latest')).toBe(1);
    for (const d of [sha256(image.config), ...image.layers.map(sha256)]) expect(gets(`blobs/${d}`), d).toBe(1);
  });

  it('streams a blob to the client while the upstream is still sending it', { timeout: 15_000 }, async () => {
    const data = Buffer.alloc(4 << 20, 'streamed while stored ');
    const digest = await pushBlob(reference.url, 'slow/blob', data);
    const res = await fetch(`${cache.url}/v2/slow.example/slow/blob/blobs/${digest}`);
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    // The upstream holds the rest back: these bytes can only come while the fetch runs.
    let received = 0;
    while (received < 512 << 10) received += (await reader.read()).value!.length;
    expect(received).toBeLessThan(data.length);
    slow.release();
    const rest: Uint8Array[] = [];
    for (let r = await reader.read(); !r.done; r = await reader.read()) rest.push(r.value);
    expect(received + rest.reduce((n, c) => n + c.length, 0)).toBe(data.length);
    const stored = await fetch(`${cache.url}/v2/slow.example/slow/blob/blobs/${digest}`);
    expect(sha256(Buffer.from(await stored.arrayBuffer()))).toBe(digest);
  });

  it('stores nothing and fails the request when the upstream sends a corrupted blob', async () => {
    // Large enough to stream in many chunks: the client gets most bytes before the check fails.
    const data = Buffer.alloc(3 << 20, 'corrupted on the way ');
    const layer = await pushBlob(reference.url, 'bad/bytes', data);
    const res = await fetch(`${cache.url}/v2/corrupt.example/bad/bytes/blobs/${layer}`);
    expect(res.status).toBe(200);
    await expect(res.arrayBuffer()).rejects.toThrow(/terminated/);
    const path = join(cache.dataDir, 'blobs', 'sha256', layer.slice(7, 9), layer.slice(7));
    expect(existsSync(path)).toBe(false);
    expect(await readdir(join(cache.dataDir, 'uploads'))).toEqual([]);
    // The same bytes through an honest upstream are stored and served.
    const good = await fetch(`${cache.url}/v2/docker.io/bad/bytes/blobs/${layer}`);
    expect(Buffer.from(await good.arrayBuffer()).equals(data)).toBe(true);
    expect(existsSync(path)).toBe(true);
  });

  it('refuses a push into a proxied prefix with DENIED, while a push elsewhere works', async () => {
    const res = await fetch(`${cache.url}/v2/docker.io/library/mine/blobs/uploads/`, { method: 'POST' });
    expect(res.status).toBe(403);
    const body = (await res.json()) as { errors: { code: string; message: string }[] };
    expect(body.errors[0]!.code).toBe('DENIED');
    expect(body.errors[0]!.message).toContain('pull-through cache');
    const manifest = imageManifest(Buffer.from('{}'), []);
    const put = await fetch(`${cache.url}/v2/ghcr.io/team/app/manifests/1`, { method: 'PUT', headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, body: manifest });
    expect(put.status).toBe(403);
    expect(await errorCode(put)).toBe('DENIED');
    await expect(skopeo('copy', '--quiet', '--dest-tls-verify=false', busybox.skopeoRef, `docker://${cacheHost}/docker.io/library/mine:1`)).rejects.toThrow(/denied|pull-through cache/i);
    await skopeo('copy', '--quiet', '--dest-tls-verify=false', busybox.skopeoRef, `docker://${cacheHost}/local/busybox:1`);
    await pushImage(cache.url, 'local/app', 'v1', 'a local push');
  }, 60_000);

  it('forwards the Accept list: a multi-platform index keeps its digest', async () => {
    const index = await buildMultiPlatformIndex(join(work, 'multi'));
    await skopeo('copy', '--quiet', '--all', '--dest-tls-verify=false', index.skopeoRef, `docker://${reference.host}/library/multi:1`);
    const digest = (await skopeo('inspect', '--raw', '--tls-verify=false', `docker://${cacheHost}/docker.io/library/multi:1`)).trim();
    expect(sha256(digest)).toBe(index.digest);
    const dir = await pullToLayout(`docker://${cacheHost}/docker.io/library/multi:1`, '--all');
    expect(JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')).manifests[0].digest).toBe(index.digest);
  }, 120_000);

  it('mirrors without the prefix: ?ns=docker.io (containerd) and library/ names (docker registry-mirrors)', async () => {
    const image = await pushImage(reference.url, 'library/mirrored', 'latest', 'mirror');
    const accept = { accept: 'application/vnd.oci.image.manifest.v1+json' };
    const ns = await fetch(`${cache.url}/v2/library/mirrored/manifests/latest?ns=docker.io`, { headers: accept });
    expect(ns.headers.get('docker-content-digest')).toBe(image.digest);
    const layer = sha256(image.layers[0]!);
    const blob = await fetch(`${cache.url}/v2/library/mirrored/blobs/${layer}`);
    expect(Buffer.from(await blob.arrayBuffer()).equals(image.layers[0]!)).toBe(true);
    // docker.io/<name> is Docker Hub's official image library/<name>, as docker reads it.
    const short = await fetch(`${cache.url}/v2/docker.io/mirrored/manifests/latest`, { headers: accept });
    expect(short.headers.get('docker-content-digest')).toBe(image.digest);
    // Both landed in the cache's repository under its prefix.
    const catalog = (await (await fetch(`${cache.url}/v2/_catalog`)).json()) as { repositories: string[] };
    expect(catalog.repositories).toContain('docker.io/library/mirrored');
    expect(catalog.repositories).not.toContain('library/mirrored');
  });

  it('logs and exposes Docker Hub rate-limit headers as metrics', async () => {
    const text = await (await fetch(`${cache.url}/metrics`)).text();
    expect(text).toMatch(/berth_proxy_ratelimit_limit\{upstream="docker.io"\} 100/);
    expect(text).toMatch(/berth_proxy_ratelimit_remaining\{upstream="docker.io"\} 76/);
    expect(text).toMatch(/berth_proxy_upstream_requests_total\{upstream="docker.io",kind="blob",method="GET",status="200"\}/);
    expect(logText).toMatch(/"rateLimit":100,"rateRemaining":76.*upstream rate limit/);
  });

  it('never logs an upstream password', () => {
    expect(logText).toContain('"upstream":"ghcr.io"');
    expect(logText).not.toContain('root-password');
  });

  it('lists a proxied repository\'s tags from the upstream, and the cached ones while it is down', async () => {
    for (const tag of ['a', 'b', 'c']) await pushImage(reference.url, 'listed/app', tag, `tag ${tag}`);
    const list = async (query = '') => {
      const res = await fetch(`${cache.url}/v2/flaky.example/listed/app/tags/list${query}`);
      return { status: res.status, link: res.headers.get('link'), body: (await res.json()) as { name: string; tags: string[] } };
    };
    // Nothing of it cached yet: the upstream's tags, with its paging.
    expect((await list()).body).toEqual({ name: 'flaky.example/listed/app', tags: ['a', 'b', 'c'] });
    const first = await list('?n=2');
    expect(first.body.tags).toEqual(['a', 'b']);
    expect(first.link).toBe('</v2/flaky.example/listed/app/tags/list?n=2&last=b>; rel="next"');
    expect((await list('?n=2&last=b')).body.tags).toEqual(['c']);
    expect((await list('?n=2&last=b')).link).toBeNull();
    expect((await fetch(`${cache.url}/v2/flaky.example/listed/nothing/tags/list`)).status).toBe(404);
    await (await fetch(`${cache.url}/v2/flaky.example/listed/app/manifests/b`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } })).arrayBuffer();
    hub.setDown(true);
    try {
      expect((await list()).body.tags).toEqual(['b']);
      expect(logText).toMatch(/upstream unavailable: listing the cached tags/);
    } finally {
      hub.setDown(false);
    }
  });

  it('evicts the least recently pulled image over maxBytes, never what a local tag holds, and counts the cache in usage', async () => {
    const images: Record<string, Awaited<ReturnType<typeof pushImage>>> = {};
    for (const name of ['a', 'b', 'c']) images[name] = await pushImage(reference.url, `cap/${name}`, '1', `image ${name} `.repeat(40));
    const pullAll = async (name: string) => {
      const image = images[name]!;
      await (await fetch(`${cache.url}/v2/small.example/cap/${name}/manifests/1`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } })).arrayBuffer();
      for (const d of [sha256(image.config), ...image.layers.map(sha256)]) {
        expect((await fetch(`${cache.url}/v2/small.example/cap/${name}/blobs/${d}`)).status).toBe(200);
      }
    };
    await pullAll('a');
    await pullAll('b');
    // A local copy of b, by mount: its tag must keep the blobs whatever the cache evicts.
    const b = images.b!;
    for (const d of [sha256(b.config), ...b.layers.map(sha256)]) {
      expect((await fetch(`${cache.url}/v2/kept/b/blobs/uploads/?mount=${d}&from=small.example/cap/b`, { method: 'POST' })).status).toBe(201);
    }
    await putManifest(cache.url, 'kept/b', '1', b.manifest);
    await pullAll('a'); // a is now more recent than b
    await pullAll('c');
    const usage = async () => ((await (await fetch(`${cache.url}/v2/_berth/usage`)).json()) as { repositories: { repository: string; total: number }[] }).repositories;
    // Eviction runs after the fill, off the request path.
    await cache.pullThroughCache!.settled();
    const listed = await usage();
    expect(listed.map((r) => r.repository)).toEqual(expect.arrayContaining(['small.example/cap/a', 'small.example/cap/c', 'kept/b']));
    const cached = listed.filter((r) => r.repository.startsWith('small.example/')).reduce((n, r) => n + r.total, 0);
    expect(cached).toBeGreaterThan(0);
    expect(cached).toBeLessThanOrEqual(3500);
    const catalog = (await (await fetch(`${cache.url}/v2/_catalog`)).json()) as { repositories: string[] };
    expect(catalog.repositories).toEqual(expect.arrayContaining(['small.example/cap/a', 'small.example/cap/c']));
    expect(catalog.repositories).not.toContain('small.example/cap/b');
    // A collection frees nothing the local tag holds.
    await cache.registry.gc.collect({ graceMs: 0, settleMs: 0 });
    for (const d of [sha256(b.config), ...b.layers.map(sha256)]) {
      const res = await fetch(`${cache.url}/v2/kept/b/blobs/${d}`);
      expect(res.status, d).toBe(200);
      await res.arrayBuffer();
    }
  }, 30_000);

  it('keeps the most recently pulled image even when it alone is over maxBytes', async () => {
    const image = await pushImage(reference.url, 'tiny/one', '1', 'larger than the cap');
    const pull = () => fetch(`${cache.url}/v2/tiny.example/tiny/one/manifests/1`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
    expect((await pull()).status).toBe(200);
    for (const d of [sha256(image.config), ...image.layers.map(sha256)]) await (await fetch(`${cache.url}/v2/tiny.example/tiny/one/blobs/${d}`)).arrayBuffer();
    await cache.pullThroughCache!.settled();
    const catalog = ((await (await fetch(`${cache.url}/v2/_catalog`)).json()) as { repositories: string[] }).repositories;
    expect(catalog).toContain('tiny.example/tiny/one');
  });

  it('evicts images not pulled for idleFor', async () => {
    const old = await pushImage(reference.url, 'idle/old', '1', 'pulled long ago');
    const fresh = await pushImage(reference.url, 'idle/fresh', '1', 'pulled just now');
    const pull = async (repo: string) => (await fetch(`${cache.url}/v2/idle.example/${repo}/manifests/1`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } })).headers.get('docker-content-digest');
    expect(await pull('idle/old')).toBe(old.digest);
    const oldConfig = sha256(old.config);
    await (await fetch(`${cache.url}/v2/idle.example/idle/old/blobs/${oldConfig}`)).arrayBuffer();
    const oldConfigFile = join(cache.dataDir, 'blobs', 'sha256', oldConfig.slice(7, 9), oldConfig.slice(7));
    expect(existsSync(oldConfigFile)).toBe(true);
    await sleep(1100); // idleFor is 1s: time itself is the event here
    expect(await pull('idle/fresh')).toBe(fresh.digest); // a fill: the cache is checked after it
    await cache.pullThroughCache!.settled();
    const catalog = ((await (await fetch(`${cache.url}/v2/_catalog`)).json()) as { repositories: string[] }).repositories;
    expect(catalog).not.toContain('idle.example/idle/old');
    expect(catalog).toContain('idle.example/idle/fresh');
    // Garbage collection frees what the eviction left unreferenced, like anything else.
    await cache.registry.gc.collect({ graceMs: 0, settleMs: 0 });
    expect(existsSync(oldConfigFile)).toBe(false);
  });

  it('lets a cached image be deleted, and fetches it again on the next pull', async () => {
    const image = await pushImage(reference.url, 'purge/me', 'latest', 'purged and fetched again');
    const url = `${cache.url}/v2/docker.io/purge/me/manifests`;
    const accept = { accept: 'application/vnd.oci.image.manifest.v1+json' };
    expect((await fetch(`${url}/latest`, { headers: accept })).status).toBe(200);
    expect((await fetch(`${url}/${image.digest}`, { method: 'DELETE' })).status).toBe(202);
    const fetches = () => hub.requests.filter((r) => r === 'GET /v2/purge/me/manifests/latest').length;
    expect(fetches()).toBe(1);
    expect((await fetch(`${url}/latest`, { headers: accept })).headers.get('docker-content-digest')).toBe(image.digest);
    expect(fetches()).toBe(2);
  });
});

interface ReferenceCache {
  reference: ReferenceRegistry;
  /** In front of the reference registry: what the cache asked it. */
  recorder: RecordingProxy;
  cache: TestServer;
  close(): Promise<void>;
}

/** The reference registry behind a recording proxy, and a cache of it as `docker.io` started by `start`. */
async function cacheOfReference(start: (proxy: UpstreamConfig[]) => Promise<TestServer>): Promise<ReferenceCache> {
  const reference = await startReferenceRegistry();
  const recorder = await startRecordingProxy(reference.url);
  const cache = await start([{ prefix: 'docker.io', url: recorder.url, tagTtl: 3_600_000 }]);
  return {
    reference,
    recorder,
    cache,
    async close() {
      await cache.destroy();
      await recorder.close();
      await reference.close();
    },
  };
}

describe.skipIf(!hasTools)('pull-through cache behind access control', () => {
  let setup: ReferenceCache;
  let cache: TestServer;
  let recorder: RecordingProxy;

  beforeAll(async () => {
    setup = await cacheOfReference((proxy) => startTestServer({ auth: { mode: 'token' }, proxy }));
    ({ cache, recorder } = setup);
    await pushImage(setup.reference.url, 'library/guarded', 'latest', 'guarded');
    await createUser(cache.registry.users, { name: 'alice', password: 'alice-password', admin: false, groups: [] });
  }, 60_000);
  afterAll(() => setup?.close());

  it('lets only clients with pull rights trigger an upstream fetch', async () => {
    const anonymous = await fetch(`${cache.url}/v2/docker.io/library/guarded/manifests/latest`);
    expect(anonymous.status).toBe(401);
    expect(recorder.requests).toEqual([]);
    const token = await fetch(`${cache.url}/auth/token?service=berth-registry&scope=repository:docker.io/library/guarded:pull`, {
      headers: { authorization: `Basic ${Buffer.from('alice:alice-password').toString('base64')}` },
    });
    const { token: bearer } = (await token.json()) as { token: string };
    const res = await fetch(`${cache.url}/v2/docker.io/library/guarded/manifests/latest`, {
      headers: { authorization: `Bearer ${bearer}`, accept: 'application/vnd.oci.image.manifest.v1+json' },
    });
    expect(res.status).toBe(200);
    expect(recorder.requests).toContain('GET /v2/library/guarded/manifests/latest');
  });
});

describe.skipIf(!e2eTools('openssl', 'skopeo', 'umoci', 'busybox'))('pull-through cache of an HTTPS upstream', () => {
  let work: string;
  let upstream: TestServer;
  let cache: TestServer;
  let image: BuiltManifestImage;

  beforeAll(async () => {
    work = await tempDir('berth-proxy-tls-');
    const cert = join(work, 'upstream.crt');
    const key = join(work, 'upstream.key');
    await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2', '-subj', '/CN=127.0.0.1',
      '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost', '-keyout', key, '-out', cert]);
    upstream = await startTestServer({ tls: { cert, key } });
    const port = new URL(upstream.url).port;
    image = await buildBusyboxImage(join(work, 'layout'));
    await skopeo('copy', '--quiet', '--dest-tls-verify=false', image.skopeoRef, `docker://127.0.0.1:${port}/library/busybox:latest`);
    cache = await startTestServer({
      proxy: [
        { prefix: 'trusted.example', url: `https://127.0.0.1:${port}`, caFile: cert, tagTtl: 3_600_000 },
        { prefix: 'untrusted.example', url: `https://localhost:${port}`, tagTtl: 3_600_000 },
      ],
    });
  }, 60_000);
  afterAll(async () => {
    await cache?.destroy();
    await upstream?.destroy();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('trusts the upstream through its caFile, besides the system CAs, and says why otherwise', async () => {
    const accept = { accept: 'application/vnd.oci.image.manifest.v1+json' };
    const trusted = await fetch(`${cache.url}/v2/trusted.example/library/busybox/manifests/latest`, { headers: accept });
    expect(trusted.status).toBe(200);
    expect(trusted.headers.get('docker-content-digest')).toBe(image.digest);
    const untrusted = await fetch(`${cache.url}/v2/untrusted.example/library/busybox/manifests/latest`, { headers: accept });
    expect(untrusted.status).toBe(502);
    expect(((await untrusted.json()) as { errors: { message: string }[] }).errors[0]!.message).toMatch(/untrusted\.example.*(SELF_SIGNED|self.signed|certificate)/i);
  });
});

describe.skipIf(!hasTools)('pull-through cache in berth serve --workers 2', () => {
  let setup: ReferenceCache;

  beforeAll(async () => {
    setup = await cacheOfReference((proxy) => startWorkersTestServer({ proxy }, 2));
  }, 60_000);
  afterAll(() => setup?.close());

  it('makes one upstream fetch per blob when concurrent pulls land on different workers', async () => {
    const layer = Buffer.alloc(2 << 20, 'fetched once by one of the workers ');
    const { reference, recorder, cache } = setup;
    const digest = await pushBlob(reference.url, 'library/shared', layer);
    // Each pull on a connection of its own: the cluster hands them to the workers in turn.
    const pulls = Array.from({ length: 10 }, async () => {
      const res = await fetch(`${cache.url}/v2/docker.io/library/shared/blobs/${digest}`, { headers: { connection: 'close' } });
      expect(res.status).toBe(200);
      expect(sha256(Buffer.from(await res.arrayBuffer()))).toBe(digest);
    });
    await Promise.all(pulls);
    expect(recorder.requests.filter((r) => r === `GET /v2/library/shared/blobs/${digest}`)).toHaveLength(1);
  });
});
