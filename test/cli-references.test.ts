// skopeo's transports on berth's command line (docker://, oci:, oci-archive:,
// docker-archive:) for push, pull, cp and inspect, against a real Berth; layouts berth
// writes from a Docker schema 2 image are read back by skopeo and umoci; and the
// references that used to go wrong: a digest in the destination, a registry without a
// repository, --platform on an image without it, an uppercase name, several images in a
// layout, a trailing colon.

import { execFile } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { berthCli, berthOk } from './helpers/berth-cli.js';
import { buildBusyboxImage, buildMultiPlatformIndex, e2eTools, skopeo, tempDir, toDockerArchive, type BuiltManifestImage } from './helpers/images.js';
import { startTestServer, type TestServer } from './helpers/server.js';

const run = promisify(execFile);
const canRun = e2eTools('umoci', 'skopeo', 'busybox');

describe.skipIf(!canRun)('image locations in skopeo syntax', () => {
  let server: TestServer;
  let host: string;
  let work: string;
  let image: BuiltManifestImage;
  /** A Docker schema 2 image on the registry, pushed from a `docker save` archive. */
  let dockerRef: string;
  let dockerDigest: string;

  beforeAll(async () => {
    work = await tempDir('berth-refs-');
    image = await buildBusyboxImage(join(work, 'layout'), { extraFiles: { 'etc/motd': 'refs\n' } });
    server = await startTestServer();
    host = new URL(server.url).host;
    const archive = await toDockerArchive(image, join(work, 'image.tar'), 'example/busybox:1');
    dockerRef = `${host}/docker/busybox:1`;
    dockerDigest = (await berthOk(['push', '-q', `docker-archive:${archive}`, dockerRef])).stdout.trim();
    const manifest = JSON.parse(await skopeo('inspect', '--raw', '--tls-verify=false', `docker://${dockerRef}`));
    expect(manifest.mediaType).toBe('application/vnd.docker.distribution.manifest.v2+json');
  });
  afterAll(async () => {
    await server?.destroy();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('pushes oci:DIR:TAG and pulls into oci:DIR (a directory, not one named "oci:.")', async () => {
    const pushed = await berthOk(['push', '-q', `oci:${image.layout}:latest`, `docker://${host}/team/app:1`]);
    expect(pushed.stdout.trim()).toBe(image.digest);
    await berthOk(['pull', '-q', `${host}/team/app:1`, 'oci:./pulled:v1'], { cwd: work });
    const index = JSON.parse(await readFile(join(work, 'pulled', 'index.json'), 'utf8'));
    expect(index.manifests.map((m: { digest: string; annotations: Record<string, string> }) => [m.digest, m.annotations['org.opencontainers.image.ref.name']])).toEqual([
      [image.digest, 'v1'],
    ]);
  });

  it('writes a layout from a Docker schema 2 image that skopeo and umoci read', async () => {
    const dir = join(work, 'from-docker');
    const pulled = JSON.parse((await berthOk(['pull', '--json', dockerRef, `oci:${dir}:1`])).stdout);
    const raw = await readFile(join(dir, 'blobs', 'sha256', pulled.digest.slice('sha256:'.length)));
    expect(JSON.parse(raw.toString()).mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
    const inspected = JSON.parse(await skopeo('inspect', `oci:${dir}:1`));
    expect(inspected.Digest).toBe(pulled.digest);
    const stat = await run('umoci', ['stat', '--image', `${dir}:1`]);
    expect(stat.stdout).toContain('LAYER');
    await run('umoci', ['unpack', '--rootless', '--image', `${dir}:1`, join(work, 'bundle')]);
    expect(await readFile(join(work, 'bundle', 'rootfs', 'etc', 'motd'), 'utf8')).toBe('refs\n');
  }, 30_000);

  it('copies to and from oci-archive: and docker-archive:, and inspects any of them', async () => {
    const ociArchive = join(work, 'app-oci.tar');
    await berthOk(['cp', `${host}/team/app:1`, `oci-archive:${ociArchive}:1`]);
    expect(JSON.parse(await skopeo('inspect', `oci-archive:${ociArchive}:1`)).Digest).toBe(image.digest);
    expect((await berthOk(['push', '-q', `oci-archive:${ociArchive}`, `${host}/team/from-oci-archive:1`])).stdout.trim()).toBe(image.digest);

    const dockerArchive = join(work, 'app-docker.tar');
    await berthOk(['cp', dockerRef, `docker-archive:${dockerArchive}:example/app:2`]);
    expect(JSON.parse((await run('tar', ['-xOf', dockerArchive, 'manifest.json'])).stdout)[0].RepoTags).toEqual(['example/app:2']);
    expect(JSON.parse(await skopeo('inspect', `docker-archive:${dockerArchive}`)).Layers).toHaveLength(image.manifest.layers.length);
    await berthOk(['cp', `docker-archive:${dockerArchive}:example/app:2`, `oci:${join(work, 'from-archive')}:2`]);
    expect(JSON.parse(await skopeo('inspect', `oci:${join(work, 'from-archive')}:2`)).Layers).toHaveLength(image.manifest.layers.length);

    for (const loc of [`oci:${image.layout}:latest`, `oci-archive:${ociArchive}`, `docker-archive:${dockerArchive}`, `docker://${host}/team/app:1`]) {
      const inspected = JSON.parse((await berthOk(['inspect', '--json', loc])).stdout);
      expect(inspected.manifest.layers, loc).toHaveLength(image.manifest.layers.length);
      expect(inspected.config.architecture, loc).toBe('amd64');
    }
  }, 30_000);

  it('fails when the digest in the destination is not the image pushed, and pushes when it is', async () => {
    const wrong = `sha256:${'0'.repeat(64)}`;
    const r = await berthCli(['push', `oci:${image.layout}`, `${host}/team/pinned@${wrong}`]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`the destination names ${wrong} but the image is ${image.digest}`);
    expect((await fetch(`${server.url}/v2/team/pinned/manifests/${image.digest}`, { method: 'HEAD' })).status).toBe(404);
    expect((await berthOk(['push', '-q', `oci:${image.layout}`, `${host}/team/pinned@${image.digest}`])).stdout.trim()).toBe(image.digest);
  });

  it('refuses a destination that names a registry and no repository', async () => {
    const r = await berthCli(['push', `oci:${image.layout}`, host]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toBe(`berth: ${host} names a registry but no repository: write ${host}/REPOSITORY[:TAG]\n`);
  });

  it('fails on a --platform the image does not have, listing the platforms it has', async () => {
    const single = await berthCli(['pull', `${host}/team/app:1`, `oci:${join(work, 'arm')}`, '--platform', 'linux/arm64']);
    expect(single.code).not.toBe(0);
    expect(single.stderr).toContain('has no image for linux/arm64 (it has: linux/amd64)');
    const index = await buildMultiPlatformIndex(join(work, 'multi'));
    await berthOk(['push', `oci:${index.layout}:${index.tag}`, `${host}/team/multi:1`]);
    const multi = await berthCli(['pull', `${host}/team/multi:1`, `oci:${join(work, 's390x')}`, '--platform', 'linux/s390x']);
    expect(multi.stderr).toContain('has no image for linux/s390x (it has: linux/amd64, linux/arm64)');
    expect((await berthOk(['pull', '-q', `${host}/team/app:1`, `oci:${join(work, 'amd')}`, '--platform', 'linux/amd64'])).stdout.trim()).toBe(image.digest);
  }, 30_000);

  it('names the fix: lowercase names, --source-tag for several images, an empty tag', async () => {
    const upper = await berthCli(['push', `oci:${image.layout}`, `${host}/Team/App:1`]);
    expect(upper.stderr).toContain('repository names are lowercase (team/app)');
    await buildBusyboxImage(join(work, 'two'), { tag: 'a' });
    await buildBusyboxImage(join(work, 'two'), { tag: 'b' });
    const several = await berthCli(['push', join(work, 'two'), `${host}/team/two:1`]);
    expect(several.stderr).toContain('holds 2 images; pick one with --source-tag TAG');
    expect(several.stderr).toContain('(tags: a, b)');
    await berthOk(['push', '--source-tag', 'b', join(work, 'two'), `${host}/team/two:1`]);
    const colon = await berthCli(['push', `oci:${image.layout}`, `${host}/team/app:`]);
    expect(colon.stderr).toContain('empty tag');
    const layoutColon = await berthCli(['push', `oci:${image.layout}:`, `${host}/team/app:2`]);
    expect(layoutColon.stderr).toContain('empty tag');
  }, 30_000);
});
