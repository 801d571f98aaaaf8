// skopeo, a real client, against Berth: images built with umoci and busybox go in and
// come back out byte for byte, between repositories by mount, as a multi-platform index
// and as Docker schema 2; inspect, list-tags and delete see what the registry holds.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  buildBusyboxImage,
  buildMultiPlatformIndex,
  e2eTools,
  readLayoutBlob,
  sha256,
  skopeo,
  tempDir,
  toDockerArchive,
  type BuiltManifestImage,
} from './helpers/images.js';
import { startRecordingProxy } from './helpers/reference-registry.js';
import { REPLICA_RUN } from './helpers/replicas.js';
import { errorCode, startTestServer, type TestServer } from './helpers/server.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
const ACCEPT = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, 'application/vnd.docker.distribution.manifest.list.v2+json'].join(', ');

const canRun = e2eTools('umoci', 'skopeo', 'busybox');

describe.skipIf(!canRun)('skopeo against Berth', () => {
  let srv: TestServer;
  let host: string;
  let work: string;
  /** busybox plus two more layers, built once and pushed by several tests. */
  let img: BuiltManifestImage;

  beforeAll(async () => {
    srv = await startTestServer();
    host = new URL(srv.url).host;
    work = await tempDir('berth-e2e-skopeo-');
    img = await buildBusyboxImage(join(work, 'src'), { tag: 'v1', extraLayers: [{ 'etc/one': 'one\n' }, { 'etc/two': 'two\n' }] });
    await skopeo('copy', '--quiet', '--dest-tls-verify=false', img.skopeoRef, `docker://${host}/e2e/busybox:v1`);
  });
  afterAll(async () => {
    await srv?.destroy();
    if (work) await rm(work, { recursive: true, force: true });
  });

  async function getManifest(repo: string, reference: string): Promise<Response> {
    return fetch(`${srv.url}/v2/${repo}/manifests/${reference}`, { headers: { Accept: ACCEPT } });
  }

  /** Every blob file of layout `out` is byte-identical to the one of the same digest in `src`. */
  async function expectSameBlobs(out: string, src: string, expectedDigests: string[]): Promise<void> {
    const files = await readdir(join(out, 'blobs', 'sha256'));
    expect(files.map((f) => `sha256:${f}`).sort()).toEqual([...new Set(expectedDigests)].sort());
    for (const file of files) {
      const digest = `sha256:${file}`;
      const copied = await readLayoutBlob(out, digest);
      expect(sha256(copied)).toBe(digest);
      expect(copied.equals(await readLayoutBlob(src, digest)), digest).toBe(true);
    }
  }

  /** The tag's digest in an OCI layout's index.json. */
  async function layoutDigest(layout: string, tag: string): Promise<string> {
    const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as {
      manifests: { digest: string; annotations?: Record<string, string> }[];
    };
    return index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag)!.digest;
  }

  it('copies an OCI layout in and back out byte for byte', async () => {
    // In: the registry serves the manifest exactly as it was in the layout.
    const res = await getManifest('e2e/busybox', 'v1');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe(OCI_MANIFEST);
    expect(res.headers.get('docker-content-digest')).toBe(img.digest);
    expect(Buffer.from(await res.arrayBuffer()).equals(img.raw)).toBe(true);
    // ...and stores each blob once, under its digest, with the same bytes (on replicas,
    // whose blobs are in S3, as the registry serves them).
    for (const d of [img.manifest.config, ...img.manifest.layers]) {
      const stored = REPLICA_RUN
        ? Buffer.from(await (await fetch(`${srv.url}/v2/e2e/busybox/blobs/${d.digest}`)).arrayBuffer())
        : await readFile(join(srv.dataDir, 'blobs', 'sha256', d.digest.slice(7, 9), d.digest.slice(7)));
      expect(stored.equals(await readLayoutBlob(img.layout, d.digest))).toBe(true);
    }

    // Out: a new layout with the same manifest digest and identical blob files.
    const out = join(work, 'out');
    await skopeo('copy', '--quiet', '--src-tls-verify=false', `docker://${host}/e2e/busybox:v1`, `oci:${out}:v1`);
    expect(await layoutDigest(out, 'v1')).toBe(img.digest);
    await expectSameBlobs(out, img.layout, [img.digest, img.manifest.config.digest, ...img.manifest.layers.map((l) => l.digest)]);
  });

  it('copies between repositories by mounting the layers instead of uploading them again', async () => {
    // Through a recording proxy, to see each request with its query string. skopeo
    // mounts blobs it has seen in another repository of the same registry host, so the
    // source is pushed through the proxy too.
    const proxy = await startRecordingProxy(srv.url);
    try {
      await skopeo('copy', '--quiet', '--dest-tls-verify=false', img.skopeoRef, `docker://${proxy.host}/e2e/mount-src:v1`);
      proxy.requests.length = 0;
      await skopeo('copy', '--quiet', '--src-tls-verify=false', '--dest-tls-verify=false', `docker://${proxy.host}/e2e/mount-src:v1`, `docker://${proxy.host}/e2e/mount-dst:v1`);
      const toDst = proxy.requests.map(decodeURIComponent).filter((r) => r.includes('/v2/e2e/mount-dst/blobs/uploads/'));
      const mounts = toDst.filter((r) => r.startsWith('POST') && r.includes('mount='));
      for (const layer of img.manifest.layers) {
        expect(mounts.some((r) => r.includes(`mount=${layer.digest}`) && r.includes('from=e2e/mount-src')), `layer ${layer.digest} mounted`).toBe(true);
      }
      // skopeo sends the (small) config again rather than mounting it; the layers never.
      const uploads = toDst.filter((r) => r.startsWith('PATCH') || r.startsWith('PUT'));
      expect(uploads.length).toBeLessThanOrEqual(2);
    } finally {
      await proxy.close();
    }

    const res = await getManifest('e2e/mount-dst', 'v1');
    expect(res.headers.get('docker-content-digest')).toBe(img.digest);
    // The destination repository links the same stored blobs: one row per digest in `blobs`
    // (on replicas, whose rows are in PostgreSQL: each blob is served from the destination).
    if (REPLICA_RUN) {
      for (const d of [img.manifest.config, ...img.manifest.layers]) {
        expect((await fetch(`${srv.url}/v2/e2e/mount-dst/blobs/${d.digest}`, { method: 'HEAD' })).status).toBe(200);
      }
      return;
    }
    const db = new Database(join(srv.dataDir, 'registry.db'), { readonly: true });
    try {
      const linked = db
        .prepare('SELECT rb.digest FROM repository_blobs rb JOIN repositories r ON r.id = rb.repo_id WHERE r.name = ? ORDER BY rb.digest')
        .all('e2e/mount-dst') as { digest: string }[];
      expect(linked.map((r) => r.digest)).toEqual([img.manifest.config.digest, ...img.manifest.layers.map((l) => l.digest)].sort());
      for (const layer of img.manifest.layers) {
        expect(db.prepare('SELECT count(*) AS n FROM blobs WHERE digest = ?').get(layer.digest)).toEqual({ n: 1 });
      }
    } finally {
      db.close();
    }
  });

  it('inspects an image: digest, layers, tags, and --raw is the pushed manifest', async () => {
    const info = JSON.parse(await skopeo('inspect', '--tls-verify=false', `docker://${host}/e2e/busybox:v1`)) as {
      Digest: string;
      Layers: string[];
      RepoTags: string[];
      Os: string;
      Architecture: string;
    };
    expect(info.Digest).toBe(img.digest);
    expect(info.Layers).toEqual(img.manifest.layers.map((l) => l.digest));
    expect(info.RepoTags).toContain('v1');
    expect(info.Os).toBe('linux');
    expect(info.Architecture).toBe('amd64');

    const raw = await skopeo('inspect', '--raw', '--tls-verify=false', `docker://${host}/e2e/busybox:v1`);
    expect(raw).toBe(img.raw.toString());
    const config = await skopeo('inspect', '--config', '--raw', '--tls-verify=false', `docker://${host}/e2e/busybox:v1`);
    expect(config).toBe((await readLayoutBlob(img.layout, img.manifest.config.digest)).toString());
  });

  it('lists tags, sorted', async () => {
    for (const tag of ['v2', 'v10', 'latest']) {
      await skopeo('copy', '--quiet', '--src-tls-verify=false', '--dest-tls-verify=false', `docker://${host}/e2e/busybox:v1`, `docker://${host}/e2e/busybox:${tag}`);
    }
    const list = JSON.parse(await skopeo('list-tags', '--tls-verify=false', `docker://${host}/e2e/busybox`)) as { Repository: string; Tags: string[] };
    expect(list.Repository).toBe(`${host}/e2e/busybox`);
    expect(list.Tags).toEqual(['latest', 'v1', 'v10', 'v2']);
  });

  it('deletes an image: its manifest is then MANIFEST_UNKNOWN, other repositories keep theirs', async () => {
    await skopeo('copy', '--quiet', '--dest-tls-verify=false', img.skopeoRef, `docker://${host}/e2e/delete-me:v1`);
    expect((await getManifest('e2e/delete-me', 'v1')).status).toBe(200);
    await skopeo('delete', '--tls-verify=false', `docker://${host}/e2e/delete-me:v1`);

    for (const reference of ['v1', img.digest]) {
      const res = await getManifest('e2e/delete-me', reference);
      expect(res.status).toBe(404);
      expect(await errorCode(res)).toBe('MANIFEST_UNKNOWN');
    }
    await expect(skopeo('inspect', '--tls-verify=false', `docker://${host}/e2e/delete-me:v1`)).rejects.toThrow(/manifest unknown/i);
    expect((await getManifest('e2e/busybox', 'v1')).status).toBe(200);
  });

  it('round-trips a multi-platform index with --all', async () => {
    const idx = await buildMultiPlatformIndex(join(work, 'multi'), { tag: 'multi' });
    await skopeo('copy', '--quiet', '--all', '--dest-tls-verify=false', idx.skopeoRef, `docker://${host}/e2e/multi:1`);

    const res = await getManifest('e2e/multi', '1');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe(OCI_INDEX);
    expect(Buffer.from(await res.arrayBuffer()).equals(idx.raw)).toBe(true);
    expect(await skopeo('inspect', '--raw', '--tls-verify=false', `docker://${host}/e2e/multi:1`)).toBe(idx.raw.toString());
    // skopeo resolves the index to the child of the platform asked for (its Digest stays the index's).
    const arm = JSON.parse(await skopeo('inspect', '--override-arch', 'arm64', '--tls-verify=false', `docker://${host}/e2e/multi:1`)) as {
      Digest: string;
      Architecture: string;
      Layers: string[];
    };
    expect(arm.Digest).toBe(idx.digest);
    expect(arm.Architecture).toBe('arm64');
    expect(arm.Layers).toEqual(idx.children[1]!.manifest.layers.map((l) => l.digest));

    const out = join(work, 'multi-out');
    await skopeo('copy', '--quiet', '--all', '--src-tls-verify=false', `docker://${host}/e2e/multi:1`, `oci:${out}:1`);
    expect(await layoutDigest(out, '1')).toBe(idx.digest);
    const expected = [idx.digest, ...idx.children.flatMap((c) => [c.digest, c.manifest.config.digest, ...c.manifest.layers.map((l) => l.digest)])];
    await expectSameBlobs(out, idx.layout, expected);
  });

  it('takes Docker schema 2 with --format v2s2 and serves it back unchanged', async () => {
    await skopeo('copy', '--quiet', '--format', 'v2s2', '--dest-tls-verify=false', img.skopeoRef, `docker://${host}/e2e/v2s2:1`);
    const res = await getManifest('e2e/v2s2', '1');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe(DOCKER_MANIFEST);
    const body = Buffer.from(await res.arrayBuffer());
    const manifest = JSON.parse(body.toString()) as { mediaType: string; config: { mediaType: string }; layers: { digest: string }[] };
    expect(manifest.mediaType).toBe(DOCKER_MANIFEST);
    expect(manifest.config.mediaType).toBe('application/vnd.docker.container.image.v1+json');
    // Same gzip layers, only the manifest's media types changed.
    expect(manifest.layers.map((l) => l.digest)).toEqual(img.manifest.layers.map((l) => l.digest));
    expect(res.headers.get('docker-content-digest')).toBe(sha256(body));

    // skopeo's dir: transport keeps the manifest exactly as it was served.
    const out = join(work, 'v2s2-out');
    await skopeo('copy', '--quiet', '--src-tls-verify=false', `docker://${host}/e2e/v2s2:1`, `dir:${out}`);
    expect((await readFile(join(out, 'manifest.json'))).equals(body)).toBe(true);
    for (const layer of manifest.layers) {
      expect((await readFile(join(out, layer.digest.slice(7)))).equals(await readLayoutBlob(img.layout, layer.digest))).toBe(true);
    }
  });

  it('takes a docker-archive and gives one back with the same image config', async () => {
    const archive = await toDockerArchive(img, join(work, 'image.tar'), 'example/busybox:latest');
    await skopeo('copy', '--quiet', '--dest-tls-verify=false', `docker-archive:${archive}`, `docker://${host}/e2e/archive:1`);
    const res = await getManifest('e2e/archive', '1');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe(DOCKER_MANIFEST);
    const info = JSON.parse(await skopeo('inspect', '--tls-verify=false', `docker://${host}/e2e/archive:1`)) as { Digest: string };
    expect(info.Digest).toBe(res.headers.get('docker-content-digest'));

    const out = join(work, 'archive-out.tar');
    await skopeo('copy', '--quiet', '--src-tls-verify=false', `docker://${host}/e2e/archive:1`, `docker-archive:${out}:example/busybox:latest`);
    const original = JSON.parse(await skopeo('inspect', '--config', `docker-archive:${archive}`)) as { rootfs: { diff_ids: string[] } };
    const roundTripped = JSON.parse(await skopeo('inspect', '--config', `docker-archive:${out}`)) as { rootfs: { diff_ids: string[] } };
    expect(roundTripped.rootfs.diff_ids).toEqual(original.rootfs.diff_ids);
    expect(roundTripped.rootfs.diff_ids).toHaveLength(img.manifest.layers.length);
  });
});
