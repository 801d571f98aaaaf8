// The client module against the reference registry (and Berth when its server is in the
// tree): skopeo interop both ways, multi-platform picks, docker archives, mounts, resume.

import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copy, OciLayout, pull, pullDockerArchive, push, pushDockerArchive, type ProgressEvent } from '../src/client/index.js';
import { buildBusyboxImage, buildMultiPlatformIndex, e2eTools, readLayoutBlob, skopeo, tempDir, toDockerArchive } from './helpers/images.js';
import { startRecordingProxy, startReferenceRegistry } from './helpers/reference-registry.js';
import { startTestServer } from './helpers/server.js';

interface Target {
  url: string;
  host: string;
  close(): Promise<void>;
}

const targets: [string, () => Promise<Target>][] = [
  ['the reference registry', startReferenceRegistry],
  [
    'Berth',
    async () => {
      const srv = await startTestServer();
      return { url: srv.url, host: new URL(srv.url).host, close: () => srv.destroy() };
    },
  ],
];

const canRun = e2eTools('umoci', 'skopeo', 'docker-registry');

describe.skipIf(!canRun).each(targets)('client against %s', (_name, start) => {
  let reg: Target;
  let work: string;
  beforeAll(async () => {
    reg = await start();
    work = await tempDir();
  });
  afterAll(async () => {
    await reg?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('pushes a layout that skopeo copies back with the same digest and identical blobs', async () => {
    const img = await buildBusyboxImage(join(work, 'src1'), { tag: 'v1', extraFiles: { 'etc/hello': 'hello\n' } });
    const result = await push(img.layout, `${reg.host}/interop/berth-pushed:v1`);
    expect(result.digest).toBe(img.digest);
    const out = join(work, 'skopeo-out');
    await skopeo('copy', '--src-tls-verify=false', `docker://${reg.host}/interop/berth-pushed:v1`, `oci:${out}:v1`);
    const back = await (await OciLayout.open(out)).resolve('v1');
    expect(back.digest).toBe(img.digest);
    for (const d of [img.manifest.config, ...img.manifest.layers]) {
      expect((await readLayoutBlob(out, d.digest)).equals(await readLayoutBlob(img.layout, d.digest))).toBe(true);
    }
  });

  it('pulls what skopeo pushed, byte for byte, into a layout skopeo and umoci read', async () => {
    const img = await buildBusyboxImage(join(work, 'src2'), { extraLayers: [{ 'a/one': 'one' }, { 'b/two': 'two' }] });
    await skopeo('copy', '--dest-tls-verify=false', img.skopeoRef, `docker://${reg.host}/interop/skopeo-pushed:latest`);
    const dir = join(work, 'pulled2');
    const events: ProgressEvent[] = [];
    const result = await pull(`${reg.host}/interop/skopeo-pushed:latest`, dir, { onProgress: (e) => events.push(e) });
    expect(result.digest).toBe(img.digest);
    expect(result.blobs).toBe(4);
    expect(events.filter((e) => e.type === 'blob-done')).toHaveLength(4);
    for (const d of [img.manifest.config, ...img.manifest.layers]) {
      expect((await readLayoutBlob(dir, d.digest)).equals(await readLayoutBlob(img.layout, d.digest))).toBe(true);
    }
    // skopeo reads the layout berth wrote
    const inspected = JSON.parse(await skopeo('inspect', '--raw', `oci:${dir}:latest`));
    expect(inspected.layers).toHaveLength(3);
  });

  it('picks the requested platform from a multi-platform index', async () => {
    const idx = await buildMultiPlatformIndex(join(work, 'multi'), { tag: 'multi' });
    await skopeo('copy', '--all', '--dest-tls-verify=false', idx.skopeoRef, `docker://${reg.host}/interop/multi:1`);
    for (const [i, platform] of ['linux/amd64', 'linux/arm64'].entries()) {
      const dir = join(work, `multi-${i}`);
      const result = await pull(`${reg.host}/interop/multi:1`, dir, { platform });
      expect(result.indexDigest).toBe(idx.digest);
      expect(result.digest).toBe(idx.children[i]!.digest);
      const layout = await OciLayout.open(dir);
      expect((await layout.resolve('1')).digest).toBe(idx.children[i]!.digest);
    }
    await expect(pull(`${reg.host}/interop/multi:1`, join(work, 'multi-x'), { platform: 'linux/s390x' })).rejects.toThrow(
      /no image for linux\/s390x \(it has: linux\/amd64, linux\/arm64\)/,
    );
    // all platforms: the index itself, same digest
    const all = await pull(`${reg.host}/interop/multi:1`, join(work, 'multi-all'), { allPlatforms: true });
    expect(all.digest).toBe(idx.digest);
  });

  it('pushes a docker archive and writes one that skopeo reads', async () => {
    const img = await buildBusyboxImage(join(work, 'src3'), { extraFiles: { 'etc/archive': 'yes' } });
    const archive = await toDockerArchive(img, join(work, 'img.tar'), 'example/bb:latest');
    const pushed = await pushDockerArchive(archive, `${reg.host}/interop/from-archive:1`);
    // skopeo pulls it and finds the same config (diff_ids intact)
    const cfg = JSON.parse(await skopeo('inspect', '--config', '--tls-verify=false', `docker://${reg.host}/interop/from-archive:1`));
    expect(cfg.rootfs.diff_ids).toHaveLength(2);
    expect(pushed.manifest.mediaType).toBe('application/vnd.docker.distribution.manifest.v2+json');
    const out = join(work, 'out.tar');
    await pullDockerArchive(`${reg.host}/interop/from-archive:1`, out);
    const fromOut = JSON.parse(await skopeo('inspect', '--config', `docker-archive:${out}`));
    expect(fromOut.rootfs.diff_ids).toEqual(cfg.rootfs.diff_ids);
  });

  it('cp between two repositories of one registry mounts instead of uploading', async () => {
    const img = await buildBusyboxImage(join(work, 'src4'));
    await push(img.layout, `${reg.host}/mount/a:1`);
    const proxy = await startRecordingProxy(reg.url);
    try {
      const result = await copy(`${proxy.host}/mount/a:1`, `${proxy.host}/mount/b:1`);
      expect(result.digest).toBe(img.digest);
      const mounts = proxy.requests.filter((r) => r.startsWith('POST') && r.includes('mount='));
      expect(mounts).toHaveLength(2);
      expect(proxy.requests.filter((r) => r.startsWith('PATCH') || (r.startsWith('PUT') && r.includes('/blobs/')))).toEqual([]);
    } finally {
      await proxy.close();
    }
  });

  it('resumes a pull cut off in the middle with Range', async () => {
    const big = randomBytes(3 * 1024 * 1024); // random: gzip cannot shrink it, so the layer stays big
    const img = await buildBusyboxImage(join(work, 'src5'), { extraFiles: { 'big.bin': big } });
    await push(img.layout, `${reg.host}/resume/big:1`);
    const proxy = await startRecordingProxy(reg.url, { dropBlobAfterBytes: 512 * 1024, times: 2 });
    try {
      const dir = join(work, 'resumed');
      const events: ProgressEvent[] = [];
      const result = await pull(`${proxy.host}/resume/big:1`, dir, { concurrency: 1, retry: { baseDelayMs: 10 }, onProgress: (e) => events.push(e) });
      expect(result.digest).toBe(img.digest);
      // Each retry asks for the rest from what arrived (about 512 KiB more each time).
      const starts = proxy.requests.filter((r) => r.includes('range=')).map((r) => Number(/bytes=(\d+)-/.exec(r)![1]));
      expect(starts).toHaveLength(2);
      expect(starts[0]).toBeGreaterThan(0);
      expect(starts[1]).toBeGreaterThan(starts[0]!);
      expect(events.some((e) => e.type === 'retry')).toBe(true);
      for (const d of img.manifest.layers) {
        expect((await readLayoutBlob(dir, d.digest)).equals(await readLayoutBlob(img.layout, d.digest))).toBe(true);
      }
    } finally {
      await proxy.close();
    }
  });

  it('resumes in a later run from what an interrupted pull left on disk', async () => {
    const img = await buildBusyboxImage(join(work, 'src7'), { extraFiles: { 'big.bin': randomBytes(2 * 1024 * 1024) } });
    await push(img.layout, `${reg.host}/resume/later:1`);
    const dir = join(work, 'resumed-later');
    // First run: the connection breaks after 256 KiB and there is no retry left.
    const broken = await startRecordingProxy(reg.url, { dropBlobAfterBytes: 256 * 1024, times: 10 });
    try {
      await expect(pull(`${broken.host}/resume/later:1`, dir, { concurrency: 1, retry: { attempts: 1 } })).rejects.toThrow();
    } finally {
      await broken.close();
    }
    // Second run: only the rest of the big layer is fetched.
    const proxy = await startRecordingProxy(reg.url);
    try {
      const result = await pull(`${proxy.host}/resume/later:1`, dir, { concurrency: 1 });
      expect(result.digest).toBe(img.digest);
      // The first layer over 256 KiB broke off (and stopped the run): now it continues from where it was.
      const ranged = proxy.requests.filter((r) => r.includes('range='));
      expect(ranged).toHaveLength(1);
      expect(Number(/bytes=(\d+)-/.exec(ranged[0]!)![1])).toBeGreaterThan(0);
      for (const d of img.manifest.layers) {
        expect((await readLayoutBlob(dir, d.digest)).equals(await readLayoutBlob(img.layout, d.digest))).toBe(true);
      }
    } finally {
      await proxy.close();
    }
  });

  it('uploads a large blob in resumable chunks', async () => {
    const img = await buildBusyboxImage(join(work, 'src6'), { extraFiles: { 'big.bin': randomBytes(2 * 1024 * 1024 + 123) } });
    const proxy = await startRecordingProxy(reg.url);
    try {
      const result = await push(img.layout, `${proxy.host}/chunked/big:1`, { upload: { monolithicMaxBytes: 512 * 1024, chunkBytes: 512 * 1024 } });
      expect(result.digest).toBe(img.digest);
      expect(proxy.requests.filter((r) => r.startsWith('PATCH')).length).toBeGreaterThanOrEqual(5);
    } finally {
      await proxy.close();
    }
    const dir = join(work, 'chunked-back');
    await skopeo('copy', '--src-tls-verify=false', `docker://${reg.host}/chunked/big:1`, `oci:${dir}:1`);
    const big = img.manifest.layers.at(-1)!;
    expect((await readLayoutBlob(dir, big.digest)).equals(await readLayoutBlob(img.layout, big.digest))).toBe(true);
  });
});
