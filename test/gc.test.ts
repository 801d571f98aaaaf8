// Garbage collection, upload expiry, retention, scrub and usage, on a real server and
// data directory.

import { afterEach, describe, expect, it } from 'vitest';
import { existsSync, readdirSync, utimesSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { parseRetentionRules } from '../src/registry/retention.js';
import { errorCode, imageManifest, pushBlob, pushImage, putManifest, sha256, startTestServer, type TestServer } from './helpers/server.js';
import { buildBusyboxImage, e2eTools, skopeo, tempDir } from './helpers/images.js';

const servers: TestServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.destroy();
});

/** A server whose blob touches are written every 20 ms, so collections can settle in 60. */
async function server(): Promise<TestServer> {
  const s = await startTestServer({ touchIntervalMs: 20 });
  servers.push(s);
  return s;
}

const FAST = { graceMs: 0, settleMs: 60 };
const tick = () => new Promise((r) => setTimeout(r, 5));

function blobFile(s: TestServer, digest: string): string {
  return join(s.dataDir, 'blobs', 'sha256', digest.slice(7, 9), digest.slice(7));
}

async function head(s: TestServer, repo: string, digest: string): Promise<number> {
  return (await fetch(`${s.url}/v2/${repo}/blobs/${digest}`, { method: 'HEAD' })).status;
}

describe('garbage collection', () => {
  it('removes exactly the blobs only a deleted image used; the other still pulls', async () => {
    const s = await server();
    const shared = Buffer.from('shared base layer');
    const config = (n: string) => Buffer.from(`{"config":"${n}"}`);
    const own = (n: string) => Buffer.from(`layer only in ${n}`);
    for (const n of ['one', 'two']) {
      await pushBlob(s.url, 'gc/app', config(n));
      await pushBlob(s.url, 'gc/app', shared);
      await pushBlob(s.url, 'gc/app', own(n));
      await putManifest(s.url, 'gc/app', n, imageManifest(config(n), [shared, own(n)]));
    }
    const doomed = imageManifest(config('one'), [shared, own('one')]);
    expect((await fetch(`${s.url}/v2/gc/app/manifests/${sha256(doomed)}`, { method: 'DELETE' })).status).toBe(202);
    await tick();

    const report = await s.registry.gc.collect(FAST);
    expect(report.blobsDeleted).toBe(3); // config one, layer one, manifest one
    expect(report.bytesFreed).toBe(config('one').length + own('one').length + doomed.length);
    for (const gone of [config('one'), own('one'), doomed]) expect(existsSync(blobFile(s, sha256(gone)))).toBe(false);
    for (const kept of [config('two'), own('two'), shared]) {
      expect(existsSync(blobFile(s, sha256(kept)))).toBe(true);
      expect(await head(s, 'gc/app', sha256(kept))).toBe(200);
    }
    const pulled = await fetch(`${s.url}/v2/gc/app/manifests/two`);
    expect(pulled.status).toBe(200);
    const again = await s.registry.gc.collect(FAST);
    expect(again.blobsDeleted).toBe(0);
  });

  it.skipIf(!e2eTools('umoci', 'skopeo', 'busybox'))('skopeo still pulls the surviving image of two that shared a base layer', async () => {
    const s = await server();
    const work = await tempDir();
    const a = await buildBusyboxImage(join(work, 'a'), { extraFiles: { '/etc/a': 'a' } });
    const b = await buildBusyboxImage(join(work, 'b'), { extraFiles: { '/etc/b': 'b' } });
    expect(a.manifest.layers[0]!.digest).toBe(b.manifest.layers[0]!.digest);
    const host = s.url.replace('http://', '');
    await skopeo('copy', '--quiet', '--dest-tls-verify=false', a.skopeoRef, `docker://${host}/gc/busybox:a`);
    await skopeo('copy', '--quiet', '--dest-tls-verify=false', b.skopeoRef, `docker://${host}/gc/busybox:b`);
    await skopeo('delete', '--tls-verify=false', `docker://${host}/gc/busybox@${a.digest}`);
    await tick();
    const report = await s.registry.gc.collect(FAST);
    expect(report.blobsDeleted).toBe(3); // a's config, a's own layer, a's manifest
    expect(existsSync(blobFile(s, a.manifest.layers[1]!.digest))).toBe(false);
    expect(existsSync(blobFile(s, a.manifest.layers[0]!.digest))).toBe(true);
    await skopeo('copy', '--quiet', '--src-tls-verify=false', `docker://${host}/gc/busybox:b`, `oci:${join(work, 'out')}:b`);
    const out = JSON.parse(await skopeo('inspect', '--raw', `oci:${join(work, 'out')}:b`));
    expect(out.layers.map((l: { digest: string }) => l.digest)).toEqual(b.manifest.layers.map((l) => l.digest));
  });

  it('keeps blobs uploaded within the grace period, and collects them after it', async () => {
    const s = await server();
    const digest = await pushBlob(s.url, 'gc/grace', 'uploaded, not yet referenced');
    const kept = await s.registry.gc.collect({ graceMs: 3_600_000, settleMs: 60 });
    expect(kept.blobsDeleted).toBe(0);
    expect(await head(s, 'gc/grace', digest)).toBe(200);
    await new Promise((r) => setTimeout(r, 100)); // let the HEAD's touch age past a zero grace
    const collected = await s.registry.gc.collect(FAST);
    expect(collected.blobsDeleted).toBe(1);
    expect(collected.linksRemoved).toBe(1);
    expect(await head(s, 'gc/grace', digest)).toBe(404);
  });

  it('keeps a blob a client checks with HEAD while the collection runs, so its manifest push succeeds', async () => {
    const s = await server();
    const config = Buffer.from('{"seen":"during gc"}');
    const digest = await pushBlob(s.url, 'gc/race', config);
    await tick();
    // The reference registry's race: the client HEADs an old unreferenced blob, skips
    // the upload, and the collection deletes the blob before the manifest arrives.
    const running = s.registry.gc.collect({ graceMs: 0, settleMs: 200 });
    await new Promise((r) => setTimeout(r, 50));
    expect(await head(s, 'gc/race', digest)).toBe(200);
    const report = await running;
    expect(report.blobsDeleted).toBe(0);
    await putManifest(s.url, 'gc/race', 'v1', imageManifest(config, []));
  });

  it('a manifest push racing a collection either succeeds whole or fails with MANIFEST_BLOB_UNKNOWN', async () => {
    const s = await server();
    const config = Buffer.from('{"late":"manifest"}');
    await pushBlob(s.url, 'gc/late', config);
    await tick();
    await s.registry.gc.collect(FAST);
    const res = await fetch(`${s.url}/v2/gc/late/manifests/v1`, {
      method: 'PUT',
      headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' },
      body: imageManifest(config, []),
    });
    expect(res.status).toBe(400);
    expect(await errorCode(res)).toBe('MANIFEST_BLOB_UNKNOWN');
    expect((await fetch(`${s.url}/v2/gc/late/manifests/v1`)).status).toBe(404);
  });

  // With no grace period a collection may take a blob between its upload and the
  // manifest that uses it: that push must then fail cleanly. With a grace period none may.
  it.each([{ graceMs: 0 }, { graceMs: 60_000 }])('stress (grace $graceMs ms): pushes from several clients while collections run again and again; every successful push pulls back intact', async ({ graceMs }) => {
    const s = await server();
    let stop = false;
    let runs = 0;
    const collector = (async () => {
      while (!stop) {
        await s.registry.gc.collect({ graceMs, settleMs: 40 });
        runs++;
      }
    })();
    const pushed: { repo: string; tag: string; manifest: Buffer; blobs: Buffer[] }[] = [];
    const refused: string[] = [];
    const client = async (c: number) => {
      for (let i = 0; i < 15; i++) {
        const repo = `stress/c${c}`;
        const tag = `t${i}`;
        const base = Buffer.from('common base layer for every image');
        const config = Buffer.from(`{"client":${c},"i":${i}}`);
        const layer = Buffer.from(`layer ${c}/${i} `.repeat(100));
        try {
          for (const blob of [base, config, layer]) {
            // Like real clients: skip what HEAD says exists.
            if ((await head(s, repo, sha256(blob))) !== 200) await pushBlob(s.url, repo, blob);
          }
          const manifest = imageManifest(config, [base, layer]);
          const res = await fetch(`${s.url}/v2/${repo}/manifests/${tag}`, { method: 'PUT', headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' }, body: manifest });
          if (res.status === 201) pushed.push({ repo, tag, manifest, blobs: [base, config, layer] });
          else refused.push(await errorCode(res));
        } catch (err) {
          refused.push(String(err));
        }
      }
    };
    await Promise.all([0, 1, 2, 3].map(client));
    stop = true;
    await collector;
    expect(runs).toBeGreaterThan(2);
    expect(pushed.length + refused.length).toBe(60);
    if (graceMs > 0) expect(refused).toEqual([]);
    else expect(new Set(refused), refused.join('\n')).toEqual(new Set(refused.length ? ['MANIFEST_BLOB_UNKNOWN'] : []));
    expect(pushed.length).toBeGreaterThan(0);
    await s.registry.gc.collect(FAST);
    for (const p of pushed) {
      const m = await fetch(`${s.url}/v2/${p.repo}/manifests/${p.tag}`);
      expect(Buffer.from(await m.arrayBuffer())).toEqual(p.manifest);
      for (const blob of p.blobs) {
        const res = await fetch(`${s.url}/v2/${p.repo}/blobs/${sha256(blob)}`);
        expect(res.status).toBe(200);
        expect(Buffer.from(await res.arrayBuffer())).toEqual(blob);
      }
    }
  });

  it('--delete-untagged removes untagged manifests, keeps index children and referrers of kept manifests, drops referrers of deleted ones', async () => {
    const s = await server();
    const EMPTY = Buffer.from('{}');
    const tagged = await pushImage(s.url, 'gc/untagged', 'keep', 'kept');
    const loose = await pushImage(s.url, 'gc/untagged', 'temp', 'loose');
    await fetch(`${s.url}/v2/gc/untagged/manifests/temp`, { method: 'DELETE' }); // now untagged
    const child = await pushImage(s.url, 'gc/untagged', sha256(imageManifest(Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', seed: 'child' })), [Buffer.from('layer one of child'), Buffer.from('layer two of child')])), 'child');
    const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: child.digest, size: child.manifest.length }] }));
    await putManifest(s.url, 'gc/untagged', 'multi', index, 'application/vnd.oci.image.index.v1+json');
    await pushBlob(s.url, 'gc/untagged', EMPTY);
    const referrer = (subject: { digest: string; manifest: Buffer }) =>
      imageManifest(EMPTY, [], { artifactType: 'application/vnd.example.sig', subject: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: subject.digest, size: subject.manifest.length } });
    const sigKept = referrer(tagged);
    const sigLoose = referrer(loose);
    await putManifest(s.url, 'gc/untagged', sha256(sigKept), sigKept);
    await putManifest(s.url, 'gc/untagged', sha256(sigLoose), sigLoose);
    await tick();

    const dry = await s.registry.gc.collect({ ...FAST, deleteUntagged: true, dryRun: true });
    expect(dry.manifestsDeleted.map((m) => m.digest).sort()).toEqual([loose.digest, sha256(sigLoose)].sort());
    expect((await fetch(`${s.url}/v2/gc/untagged/manifests/${loose.digest}`)).status).toBe(200);

    const report = await s.registry.gc.collect({ ...FAST, deleteUntagged: true });
    expect(report.manifestsDeleted.map((m) => m.digest).sort()).toEqual([loose.digest, sha256(sigLoose)].sort());
    for (const digest of [tagged.digest, child.digest, sha256(index), sha256(sigKept)]) {
      expect((await fetch(`${s.url}/v2/gc/untagged/manifests/${digest}`)).status).toBe(200);
    }
    expect((await fetch(`${s.url}/v2/gc/untagged/manifests/${loose.digest}`)).status).toBe(404);
    const without = await s.registry.gc.collect(FAST);
    expect(without.manifestsDeleted).toEqual([]);
  });

  it('deleting a manifest through the API takes its referrers with it', async () => {
    const s = await server();
    const EMPTY = Buffer.from('{}');
    const subject = await pushImage(s.url, 'gc/refs', 'v1', 'subject');
    await pushBlob(s.url, 'gc/refs', EMPTY);
    const sig = imageManifest(EMPTY, [], { artifactType: 'application/vnd.example.sig', subject: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: subject.digest, size: subject.manifest.length } });
    await putManifest(s.url, 'gc/refs', sha256(sig), sig);
    await fetch(`${s.url}/v2/gc/refs/manifests/${subject.digest}`, { method: 'DELETE' });
    expect((await fetch(`${s.url}/v2/gc/refs/manifests/${sha256(sig)}`)).status).toBe(404);
  });

  it('dry run deletes nothing', async () => {
    const s = await server();
    const digest = await pushBlob(s.url, 'gc/dry', 'would go');
    await new Promise((r) => setTimeout(r, 50));
    const report = await s.registry.gc.collect({ ...FAST, dryRun: true });
    expect(report.blobsDeleted).toBe(1);
    expect(existsSync(blobFile(s, digest))).toBe(true);
    expect(await head(s, 'gc/dry', digest)).toBe(200);
  });

  it('expires idle upload sessions and orphaned upload files with their bytes', async () => {
    const s = await server();
    const res = await fetch(`${s.url}/v2/gc/uploads/blobs/uploads/`, { method: 'POST' });
    const location = res.headers.get('location')!;
    await fetch(`${s.url}${location}`, { method: 'PATCH', body: 'half an upload' });
    const uuid = location.split('/').pop()!;
    const orphan = join(s.dataDir, 'uploads', 'orphan-from-a-crash');
    writeFileSync(orphan, 'bytes');
    utimesSync(orphan, new Date(Date.now() - 7200_000), new Date(Date.now() - 7200_000));
    const fresh = await s.registry.gc.collect({ ...FAST, uploadTtlMs: 3_600_000 });
    expect(fresh.uploadsExpired).toBe(1); // only the orphan file: the session is active
    expect(existsSync(join(s.dataDir, 'uploads', uuid))).toBe(true);
    await new Promise((r) => setTimeout(r, 30));
    const expired = await s.registry.gc.collect({ ...FAST, uploadTtlMs: 10 });
    expect(expired.uploadsExpired).toBe(1);
    expect(existsSync(join(s.dataDir, 'uploads', uuid))).toBe(false);
    expect((await fetch(`${s.url}${location}`)).status).toBe(404);
  });

  it('deletes objects that have no row (a crash between writing a blob and recording it), and nothing else', async () => {
    const s = await server();
    const kept = await pushImage(s.url, 'gc/orphans', 'v1', 'kept');
    const stray = sha256('an object a crash left without its row');
    mkdirSync(join(blobFile(s, stray), '..'), { recursive: true });
    writeFileSync(blobFile(s, stray), 'an object a crash left without its row');
    const report = await s.registry.gc.collect(FAST);
    expect(report.orphansDeleted).toBe(1);
    expect(existsSync(blobFile(s, stray))).toBe(false);
    for (const blob of [kept.config, ...kept.layers, kept.manifest]) expect(existsSync(blobFile(s, sha256(blob)))).toBe(true);
  });

  it('runs on a schedule inside the server', async () => {
    const s = await startTestServer({ touchIntervalMs: 20, gc: { intervalMs: 100, graceMs: 0, settleMs: 40 } });
    servers.push(s);
    const digest = await pushBlob(s.url, 'gc/scheduled', 'collected by the schedule');
    for (let i = 0; i < 50 && existsSync(blobFile(s, digest)); i++) await new Promise((r) => setTimeout(r, 50));
    expect(existsSync(blobFile(s, digest))).toBe(false);
  });

  it('refuses a second collection while one runs', async () => {
    const s = await server();
    const first = s.registry.gc.collect({ ...FAST, settleMs: 200 });
    await expect(s.registry.gc.collect(FAST)).rejects.toThrow(/already running/);
    await first;
  });
});

describe('retention', () => {
  it('keeps the newest N tags, deletes old ones, never touches protected patterns', async () => {
    const s = await server();
    for (const tag of ['v1.0', 'build-1', 'build-2', 'build-3', 'build-4', 'latest']) {
      await pushImage(s.url, 'ret/app', tag, tag);
      await new Promise((r) => setTimeout(r, 5));
    }
    await pushImage(s.url, 'other/app', 'build-1', 'other');
    const rules = parseRetentionRules([{ repositories: 'ret/*', keepLast: 2, protect: ['latest', 'v*'] }]);
    const plan = await s.registry.retention.plan(rules);
    expect(plan.map((d) => `${d.repository}:${d.tag}`).sort()).toEqual(['ret/app:build-1', 'ret/app:build-2']);
    const result = await s.registry.retention.apply(plan);
    expect(result).toEqual({ tagsDeleted: 2, manifestsDeleted: 2 });
    const tags = (await (await fetch(`${s.url}/v2/ret/app/tags/list`)).json()) as { tags: string[] };
    expect(tags.tags).toEqual(['build-3', 'build-4', 'latest', 'v1.0']);
    expect((await fetch(`${s.url}/v2/other/app/manifests/build-1`)).status).toBe(200);

    const byAge = await s.registry.retention.plan(parseRetentionRules([{ repositories: '**', olderThan: '1ms', protect: 'latest' }]), Date.now() + 10);
    expect(byAge.map((d) => `${d.repository}:${d.tag}`).sort()).toEqual(['other/app:build-1', 'ret/app:build-3', 'ret/app:build-4', 'ret/app:v1.0']);
  });

  it('names the key of a bad rule', () => {
    expect(() => parseRetentionRules([{ repositories: 'a', keepLast: 'x' }])).toThrow(/retention\[0\]\.keepLast/);
    expect(() => parseRetentionRules([{ repositories: 'a', olderThan: 'soon' }])).toThrow(/retention\[0\]\.olderThan/);
    expect(() => parseRetentionRules([{ repositories: 'a', keep: 3 }])).toThrow(/retention\[0\]\.keep: unknown key/);
  });
});

describe('scrub', () => {
  it('finds a corrupted blob, a missing file and a file without a record; --repair fixes them', async () => {
    const s = await server();
    const img = await pushImage(s.url, 'scrub/app', 'v1', 'scrub');
    const corrupt = sha256(img.layers[0]!);
    writeFileSync(blobFile(s, corrupt), 'flipped bits');
    const lostDigest = await pushBlob(s.url, 'scrub/app', 'a blob whose file is lost');
    const { rmSync } = await import('node:fs');
    rmSync(blobFile(s, lostDigest));
    const strayDigest = sha256('a stray file');
    mkdirSync(join(blobFile(s, strayDigest), '..'), { recursive: true });
    writeFileSync(blobFile(s, strayDigest), 'a stray file');

    const report = await s.registry.scrub.run();
    expect(report.corrupted.map((c) => c.digest)).toEqual([corrupt]);
    expect(existsSync(blobFile(s, corrupt))).toBe(false);
    expect(readdirSync(join(s.dataDir, 'quarantine'))).toHaveLength(1);
    expect(report.missingFiles).toEqual([lostDigest]);
    expect(report.orphanFiles).toEqual([strayDigest]);

    const repaired = await s.registry.scrub.run({ repair: true });
    expect(repaired.missingFiles).toEqual([corrupt, lostDigest].sort());
    expect(existsSync(blobFile(s, strayDigest))).toBe(false);
    // The corrupt layer is forgotten: HEAD says 404, the client pushes it again, and the image heals.
    expect(await head(s, 'scrub/app', corrupt)).toBe(404);
    expect(repaired.brokenManifests.map((m) => m.missing)).toEqual([corrupt]);
    await pushBlob(s.url, 'scrub/app', img.layers[0]!);
    const clean = await s.registry.scrub.run();
    expect(clean.brokenManifests).toEqual([]);
    expect(clean.corrupted.length + clean.missingFiles.length + clean.orphanFiles.length).toBe(0);
  });
});

describe('storage usage', () => {
  it('gives each repository its total and unique bytes, via the library and the admin endpoint', async () => {
    const s = await server();
    const shared = Buffer.from('x'.repeat(1000));
    const onlyA = Buffer.from('a'.repeat(300));
    const config = Buffer.from('{}');
    await pushBlob(s.url, 'du/a', shared);
    await pushBlob(s.url, 'du/a', onlyA);
    await pushBlob(s.url, 'du/a', config);
    await pushBlob(s.url, 'du/b', shared);
    await pushBlob(s.url, 'du/b', config);
    const ma = imageManifest(config, [shared, onlyA]);
    const mb = imageManifest(config, [shared]);
    await putManifest(s.url, 'du/a', 'v1', ma);
    await putManifest(s.url, 'du/b', 'v1', mb);
    const usage = await s.registry.usage.report();
    const a = usage.repositories.find((r) => r.repository === 'du/a')!;
    const b = usage.repositories.find((r) => r.repository === 'du/b')!;
    expect(a.total).toBe(shared.length + onlyA.length + config.length + ma.length);
    expect(a.unique).toBe(onlyA.length + ma.length);
    expect(b.total).toBe(shared.length + config.length + mb.length);
    expect(b.unique).toBe(mb.length);
    expect(usage.storedBytes).toBe(shared.length + onlyA.length + config.length + ma.length + mb.length);
    const http = await (await fetch(`${s.url}/v2/_berth/usage`)).json();
    expect(http).toEqual(JSON.parse(JSON.stringify(usage)));
  });
});

describe('the database stays consistent', () => {
  it('after collections, foreign keys and integrity hold', async () => {
    const s = await server();
    await pushImage(s.url, 'gc/fk', 'v1', 'fk');
    const dropped = await pushImage(s.url, 'gc/fk', 'v2', 'dropped');
    expect((await fetch(`${s.url}/v2/gc/fk/manifests/${dropped.digest}`, { method: 'DELETE' })).status).toBe(202);
    // A collection that really deletes rows (manifest references, links, blobs) beside kept ones.
    const report = await s.registry.gc.collect({ ...FAST, deleteUntagged: true });
    expect(report.blobsDeleted).toBe(4); // the dropped image's config, two layers and manifest
    const db = new Database(join(s.dataDir, 'registry.db'), { readonly: true });
    expect(db.pragma('foreign_key_check')).toEqual([]);
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
    db.close();
  });
});

describe('the gc section of the configuration', () => {
  it('reads interval, grace and retention rules, and names a bad key', async () => {
    const { loadConfig } = await import('../src/config/config.js');
    const dir = await tempDir();
    const file = join(dir, 'berth.yaml');
    writeFileSync(file, 'gc:\n  interval: 6h\n  retention:\n    - repositories: "ci/**"\n      keepLast: 3\n      protect: [latest]\n');
    const config = loadConfig({ flags: { config: file, gcGrace: '2h' }, env: {} });
    expect(config.gc).toMatchObject({ interval: 6 * 3_600_000, grace: 2 * 3_600_000, deleteUntagged: false, retention: [{ repositories: 'ci/**', keepLast: 3, protect: ['latest'] }] });
    writeFileSync(file, 'gc:\n  retention:\n    - repositories: "x"\n      keepLast: many\n');
    expect(() => loadConfig({ flags: { config: file }, env: {} })).toThrow(/gc\.retention.*keepLast/);
    expect(() => loadConfig({ flags: {}, env: { BERTH_GC_INTERVAL: 'soon' } })).toThrow(/gc\.interval.*BERTH_GC_INTERVAL/);
  });
});
