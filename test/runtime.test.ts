// The bundled runtime, end to end through the `berth` command (build first: tsc): a
// busybox image built with umoci runs in namespaces as PID 1 with its own hostname, on
// overlayfs (and the copy fallback) with whiteouts applied, under a memory limit, and
// is pulled from a Berth server started here. Needs root, util-linux and overlayfs:
// skipped with a message otherwise, failed under BERTH_REQUIRE_E2E=1.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { push } from '../src/client/index.js';
import { startServer, type RunningServer } from '../src/server/serve.js';
import { buildBusyboxImage, tempDir } from './helpers/images.js';
import { BERTH, berth, buildRuntimeImage, json, leakedCgroups, runtimeAvailable } from './helpers/runtime.js';
import { stackLayers, tarLayer } from './helpers/runtime-images.js';

describe.skipIf(!runtimeAvailable())('berth run', () => {
  let dir: string;
  let layout: string;
  let root: string;

  const run = (...args: string[]) => berth(['run', '--root', root, '--rm', '-q', ...args]);

  beforeAll(async () => {
    dir = await tempDir('berth-runtime-');
    layout = join(dir, 'layout');
    root = join(dir, 'root');
    await buildRuntimeImage(layout);
  });

  afterEach(async () => {
    // Nothing of a container may outlive it: no cgroup left, no mount visible on the host.
    expect(await leakedCgroups()).toEqual([]);
    expect(await readFile('/proc/self/mountinfo', 'utf8')).not.toContain(dir);
  });

  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('runs the command as PID 1', async () => {
    const r = await run(`oci:${layout}:latest`, 'sh', '-c', 'echo $$');
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('1\n');
    expect(r.code).toBe(0);
  });

  it('sets the hostname given, not the host one', async () => {
    const r = await run('--hostname', 'berth-box', `oci:${layout}:latest`, 'hostname');
    expect(r.stdout).toBe('berth-box\n');
  });

  it('passes exit codes through', async () => {
    for (const status of [0, 3, 42]) {
      expect((await run(`oci:${layout}:latest`, 'sh', '-c', `exit ${status}`)).code).toBe(status);
    }
    expect((await run(`oci:${layout}:latest`, 'no-such-command')).code).toBe(127);
  });

  it('gives each run a fresh writable layer', async () => {
    expect((await run(`oci:${layout}:latest`, 'sh', '-c', 'echo hi > /written && cat /written')).stdout).toBe('hi\n');
    const again = await run(`oci:${layout}:latest`, 'sh', '-c', 'test -e /written && echo present || echo absent');
    expect(again.stdout).toBe('absent\n');
  });

  it('runs with the image environment, -e, -w and -u', async () => {
    const r = await run('-e', 'GREETING=hello', '-w', '/tmp/work', '-u', '1000:1001', `oci:${layout}:latest`, 'sh', '-c', 'echo $GREETING; echo $PWD; id -u; id -g');
    expect(r.stdout).toBe('hello\n/tmp/work\n1000\n1001\n');
  });

  it('kills a process that allocates past --memory and exits 137', async () => {
    const r = await run('--memory', '32m', `oci:${layout}:latest`, 'dd', 'if=/dev/zero', 'of=/dev/null', 'bs=64M', 'count=1');
    expect(r.code).toBe(137);
    const fits = await run('--memory', '32m', `oci:${layout}:latest`, 'dd', 'if=/dev/zero', 'of=/dev/null', 'bs=8M', 'count=1');
    expect(fits.code).toBe(0);
  });

  it('limits processes with --pids and the network with --net none', async () => {
    const r = await run('--pids', '2', `oci:${layout}:latest`, 'sh', '-c', 'sleep 1 & sleep 1 & sleep 1 & wait');
    expect(r.stderr).toMatch(/can't fork/);
    expect((await run('--net', 'none', `oci:${layout}:latest`, 'ls', '/sys/class/net')).stdout).toBe('lo\n');
  });

  it('bind-mounts volumes, read-only with :ro', async () => {
    const host = join(dir, 'volume');
    await mkdir(host, { recursive: true });
    await writeFile(join(host, 'hello'), 'from the host\n');
    const r = await run('-v', `${host}:/mnt/data`, '-v', `${host}:/ro:ro`, `oci:${layout}:latest`, 'sh', '-c', 'cat /mnt/data/hello; echo new > /mnt/data/new; touch /ro/x || echo refused');
    expect(r.stdout).toBe('from the host\nrefused\n');
    expect(await readFile(join(host, 'new'), 'utf8')).toBe('new\n');
  });

  it('never follows a symlink of the image to the host when making a mount point', async () => {
    const evil = await tarLayer([{ name: 'escape', type: 'symlink', linkname: dir }]);
    await stackLayers(layout, 'latest', 'escape', [evil]);
    const r = await run('-v', `${dir}:/escape/made-by-berth`, `oci:${layout}:escape`, 'true');
    expect(r.code).toBe(125);
    expect(r.stderr).toMatch(/symbolic link/);
    expect(existsSync(join(dir, 'made-by-berth'))).toBe(false);
  });

  it('provides /etc/hostname and /etc/hosts, leaving an image symlink in their place alone', async () => {
    const r = await run('--net', 'none', '--hostname', 'web', `oci:${layout}:latest`, 'sh', '-c', 'cat /etc/hostname /etc/hosts');
    expect(r.stdout).toBe('web\n127.0.0.1\tlocalhost web\n::1\tlocalhost ip6-localhost ip6-loopback\n');
    const linked = await tarLayer([{ name: 'etc/', type: 'directory' }, { name: 'etc/hosts', type: 'symlink', linkname: '/host-file' }]);
    await stackLayers(layout, 'latest', 'etc-link', [linked]);
    const l = await run(`oci:${layout}:etc-link`, 'sh', '-c', 'busybox readlink /etc/hosts; cat /etc/hostname');
    expect(l.stderr).toBe('');
    expect(l.stdout).toMatch(/^\/host-file\n[0-9a-f]{12}\n$/);
  });

  it('gives -t a terminal of its own', async () => {
    const r = await run('-t', `oci:${layout}:latest`, 'sh', '-c', 'test -t 0 && test -t 1 && echo terminal; exit 3');
    expect(r.stdout).toContain('terminal');
    expect(r.code).toBe(3);
  });

  it('lists a running container in ps and passes signals on to its PID 1', async () => {
    const child = spawn(process.execPath, [BERTH, 'run', '--root', root, '--rm', '-q', '--name', 'trapper', `oci:${layout}:latest`, 'sh', '-c', 'trap "echo got TERM; exit 5" TERM; echo ready; while :; do sleep 0.1; done']);
    let out = '';
    await new Promise<void>((resolve) => child.stdout.on('data', (c: Buffer) => ((out += c.toString()), out.includes('ready') && resolve())));
    const running = json<{ name: string; status: string; pid: number }[]>(await berth(['ps', '--root', root, '--json']));
    expect(running.map((c) => [c.name, c.status])).toEqual([['trapper', 'running']]);
    expect(running[0]!.pid).toBeGreaterThan(1);
    child.kill('SIGTERM');
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(out).toBe('ready\ngot TERM\n');
    expect(code).toBe(5);
  });

  describe.each(['overlay', 'copy'])('whiteouts (%s)', (mode) => {
    it('hides a deleted file and the old content of an opaque directory', async () => {
      const lower = await tarLayer([
        { name: 'data/', type: 'directory' },
        { name: 'data/deleted', content: 'x' },
        { name: 'data/kept', content: 'kept' },
        { name: 'opq/', type: 'directory' },
        { name: 'opq/old', content: 'old' },
      ]);
      const upper = await tarLayer([
        { name: 'data/', type: 'directory' },
        { name: 'data/.wh.deleted' },
        { name: 'opq/', type: 'directory' },
        { name: 'opq/.wh..wh..opq' },
        { name: 'opq/new', content: 'new' },
      ]);
      await stackLayers(layout, 'latest', 'whiteouts', [lower, upper]);
      const r = await berth(['run', '--root', root, '--rm', '-q', `oci:${layout}:whiteouts`, 'sh', '-c', 'ls /data /opq'], { BERTH_ROOTFS: mode });
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe('/data:\nkept\n\n/opq:\nnew\n');
    });
  });

  it('unpacks a base layer shared by two images once', async () => {
    const fresh = join(dir, 'shared-root');
    await buildBusyboxImage(layout, { tag: 'one', extraFiles: { 'etc/one': '1' } });
    await buildBusyboxImage(layout, { tag: 'two', extraFiles: { 'etc/two': '2' } });
    const first = await berth(['run', '--root', fresh, '--rm', `oci:${layout}:one`, '/bin/busybox', 'cat', '/etc/one']);
    expect(first.stdout).toBe('1');
    expect(first.stderr.match(/^Unpacking /gm)).toHaveLength(2);
    const second = await berth(['run', '--root', fresh, '--rm', `oci:${layout}:two`, '/bin/busybox', 'cat', '/etc/two']);
    expect(second.stdout).toBe('2');
    expect(second.stderr.match(/^Unpacking /gm)).toHaveLength(1);
    const layers = await readdir(join(fresh, 'layers', 'sha256'));
    expect(layers).toHaveLength(3);
  });

  it('keeps stopped containers for ps -a until prune', async () => {
    const own = join(dir, 'ps-root');
    const r = await berth(['run', '--root', own, '-q', '--name', 'kept', `oci:${layout}:latest`, 'sh', '-c', 'exit 7']);
    expect(r.code).toBe(7);
    const ps = json<{ name: string; status: string; exitCode: number }[]>(await berth(['ps', '--root', own, '-a', '--json']));
    expect(ps.map((c) => [c.name, c.status, c.exitCode])).toEqual([['kept', 'exited', 7]]);
    expect((await berth(['ps', '--root', own, '--json'])).stdout.trim()).toBe('[]');
    const pruned = json<{ containers: string[]; layers: string[] }>(await berth(['prune', '--root', own, '--json']));
    expect(pruned.containers).toEqual(['kept']);
    // Run from a layout, the image is not in the store: its layers go with the last container.
    expect(pruned.layers).toHaveLength(2);
  });

  describe('pulling from a Berth server', () => {
    let server: RunningServer;
    let image: string;

    beforeAll(async () => {
      server = await startServer({ listen: '127.0.0.1:0', data: join(dir, 'registry'), logger: pino({ level: 'silent' }) });
      image = `127.0.0.1:${server.port}/test/busybox:1.0`;
      await push(layout, image, { sourceTag: 'latest' });
    });
    afterAll(async () => {
      await server?.close();
    });

    it('pulls the image when it is not in the store, then runs from the store', async () => {
      const store = join(dir, 'pull-root');
      const first = await berth(['run', '--root', store, '--rm', image, 'sh', '-c', 'echo $$']);
      expect(first.stdout).toBe('1\n');
      expect(first.stderr).toContain(`Pulling ${image}`);
      const again = await berth(['run', '--root', store, '--rm', image, 'hostname']);
      expect(again.stderr).not.toContain('Pulling');
      expect(again.stderr).not.toContain('Unpacking');

      const images = json<{ name: string }[]>(await berth(['images', '--root', store, '--json']));
      expect(images.map((i) => i.name)).toEqual([image]);
      expect((await berth(['rmi', '--root', store, image])).code).toBe(0);
      expect(json(await berth(['images', '--root', store, '--json']))).toEqual([]);
      const pruned = json<{ layers: string[] }>(await berth(['prune', '--root', store, '--json']));
      expect(pruned.layers).toHaveLength(2);
      expect(await readdir(join(store, 'images', 'blobs', 'sha256'))).toEqual([]);
    });
  });
});
