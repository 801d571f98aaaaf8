// Berth as a mirror that clients use without naming it: podman with a registries.conf
// `[[registry.mirror]]`, and containerd's `ctr` with a hosts.toml (`--hosts-dir`, which
// sends `?ns=docker.io`), both pulling `docker.io/library/busybox` through the cache of
// a reference registry standing in for Docker Hub. The registries' own locations point
// at a closed loopback port, so nothing can reach the internet and a pull that did not
// go through Berth fails.

import { execFile } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type Daemon } from './helpers/daemon.js';
import { buildBusyboxImage, e2eTools, skopeo, tempDir, type BuiltManifestImage } from './helpers/images.js';
import { freePort, startRecordingProxy, startReferenceRegistry, type RecordingProxy, type ReferenceRegistry } from './helpers/reference-registry.js';
import { startTestServer, type TestServer } from './helpers/server.js';

const run = promisify(execFile);

describe.skipIf(!e2eTools('docker-registry', 'skopeo', 'umoci', 'busybox'))('Berth as a registry mirror', () => {
  let work: string;
  let reference: ReferenceRegistry;
  let hub: RecordingProxy;
  let cache: TestServer;
  let cacheHost: string;
  let image: BuiltManifestImage;
  /** A loopback port nothing listens on: where the mirrored registry "is". */
  let nowhere: string;

  beforeAll(async () => {
    work = await tempDir('berth-mirror-');
    reference = await startReferenceRegistry();
    hub = await startRecordingProxy(reference.url);
    image = await buildBusyboxImage(join(work, 'layout'), { tag: '1.36' });
    await skopeo('copy', '--quiet', '--dest-tls-verify=false', image.skopeoRef, `docker://${reference.host}/library/busybox:1.36`);
    cache = await startTestServer({ proxy: [{ prefix: 'docker.io', url: hub.url, tagTtl: 3_600_000 }] });
    cacheHost = cache.url.replace('http://', '');
    nowhere = `127.0.0.1:${await freePort()}`;
  }, 60_000);

  afterAll(async () => {
    await cache?.destroy();
    await hub?.close();
    await reference?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it.skipIf(!e2eTools('podman'))('podman pulls docker.io/library/busybox through a registries.conf mirror', async () => {
    const conf = join(work, 'registries.conf');
    await writeFile(
      conf,
      [
        '[[registry]]',
        'prefix = "docker.io"',
        `location = "${nowhere}"`,
        '[[registry.mirror]]',
        `location = "${cacheHost}/docker.io"`,
        'insecure = true',
        '',
      ].join('\n'),
    );
    const store = ['--root', join(work, 'podman-root'), '--runroot', join(work, 'podman-run'), '--storage-driver', 'vfs'];
    const env = { ...process.env, CONTAINERS_REGISTRIES_CONF: conf };
    await run('podman', [...store, 'pull', '--quiet', 'docker.io/library/busybox:1.36'], { env });
    const { stdout } = await run('podman', [...store, 'image', 'inspect', '--format', '{{.Digest}}', 'docker.io/library/busybox:1.36'], { env });
    expect(stdout.trim()).toBe(image.digest);
    expect(hub.requests).toContain('GET /v2/library/busybox/manifests/1.36');
  }, 120_000);

  describe.skipIf(!e2eTools('containerd', 'ctr'))('containerd', () => {
    let containerd: Daemon;
    let socket: string;

    beforeAll(async () => {
      const dir = join(work, 'containerd');
      await mkdir(dir, { recursive: true });
      socket = join(dir, 'containerd.sock');
      const config = join(dir, 'config.toml');
      // Its own root, state and socket: the machine's containerd (if any) is untouched.
      await writeFile(
        config,
        [
          'version = 2',
          `root = "${join(dir, 'root')}"`,
          `state = "${join(dir, 'state')}"`,
          'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
          '[grpc]',
          `  address = "${socket}"`,
          '[ttrpc]',
          `  address = "${socket}.ttrpc"`,
          '[debug]',
          '  address = ""',
          '[metrics]',
          '  address = ""',
          '',
        ].join('\n'),
      );
      containerd = startDaemon('containerd', 'containerd', ['--config', config]);
      await containerd.waitFor(/serving\.\.\..*containerd\.sock"?\s*$/m, 30_000, 'its socket');
    }, 60_000);
    afterAll(async () => {
      await containerd?.stop();
    });

    it('ctr pulls docker.io/library/busybox through a hosts.toml mirror (?ns=docker.io)', async () => {
      const hosts = join(work, 'certs.d');
      await mkdir(join(hosts, 'docker.io'), { recursive: true });
      await writeFile(
        join(hosts, 'docker.io', 'hosts.toml'),
        [`server = "http://${nowhere}"`, '', `[host."http://${cacheHost}"]`, '  capabilities = ["pull", "resolve"]', ''].join('\n'),
      );
      const ctr = (...args: string[]) => run('ctr', ['--address', socket, '--namespace', 'berth-test', ...args]);
      await ctr('images', 'pull', '--hosts-dir', hosts, '--snapshotter', 'native', 'docker.io/library/busybox:1.36');
      const { stdout } = await ctr('images', 'ls', '--quiet');
      expect(stdout).toContain('docker.io/library/busybox:1.36');
      const { stdout: list } = await ctr('images', 'ls');
      expect(list).toContain(image.digest);
      const catalog = (await (await fetch(`${cache.url}/v2/_catalog`)).json()) as { repositories: string[] };
      expect(catalog.repositories).toContain('docker.io/library/busybox');
    }, 120_000);
  });
});
