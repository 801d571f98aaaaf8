// /healthz and /readyz, and read-only mode: answers of a healthy server, a failing
// readiness when the disk is short or the data directory is on a read-only mount (as
// root, permission bits stop nothing: the test mounts it read-only in a mount namespace
// of the server's own), and a read-only registry that serves pulls and refuses writes.

import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startServer } from '../src/server/serve.js';
import { createLogger } from '../src/server/logger.js';
import { READ_ONLY_MESSAGE } from '../src/server/readonly.js';
import { e2eTools } from './helpers/images.js';
import { errorCode, pushImage, sha256, startTestServer, type TestServer } from './helpers/server.js';

const root = join(import.meta.dirname, '..');
const bin = join(root, 'dist', 'src', 'cli', 'main.js');
const run = promisify(execFile);

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function server(options: Parameters<typeof startTestServer>[0] = {}): Promise<TestServer> {
  const s = await startTestServer(options);
  cleanups.push(() => s.destroy());
  return s;
}

describe('health', () => {
  it('/healthz is alive, /readyz checks database, data directory and disk', async () => {
    const s = await server();
    const alive = await fetch(`${s.url}/healthz`);
    expect(alive.status).toBe(200);
    expect(await alive.json()).toEqual({ status: 'ok' });
    const ready = await fetch(`${s.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready', checks: { database: 'ok', dataDir: 'ok', disk: 'ok' } });
    // The write probe leaves nothing behind.
    expect((await readdir(s.dataDir)).filter((f) => f.startsWith('.readyz'))).toEqual([]);
  });

  it('/readyz fails when the disk has less free space than health.minFreeBytes', async () => {
    const s = await server({ health: { minFreeBytes: Number.MAX_SAFE_INTEGER } });
    const res = await fetch(`${s.url}/readyz`);
    expect(res.status).toBe(503);
    const body = (await res.json()) as { status: string; checks: Record<string, string> };
    expect(body.status).toBe('not ready');
    expect(body.checks.disk).toMatch(/^failed: low disk space/);
    expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
  });
});

const canMount = process.getuid?.() === 0 && e2eTools('unshare') && existsSync('/usr/bin/nsenter');

describe.skipIf(!canMount)('readiness with a read-only data directory (unshare + nsenter, as root)', () => {
  beforeAll(() => {
    if (!existsSync(bin)) execFileSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: root });
  });

  it('fails /readyz with EROFS once the data directory is remounted read-only, and recovers', async () => {
    const data = await mkdtemp(join(tmpdir(), 'berth-ro-'));
    cleanups.push(() => rm(data, { recursive: true, force: true }));
    // The server runs in a mount namespace of its own: the read-only bind mount below is
    // seen only by it, and disappears with it.
    // One process: with several workers, the first logs its address while another may
    // still be opening its files, and a file opened for writing under the new bind mount
    // makes the read-only remount fail with EBUSY.
    const child: ChildProcess = spawn('unshare', ['--mount', '--propagation', 'private', process.execPath, bin, 'serve', '--workers', '1', '--listen', '127.0.0.1:0', '--data', data], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    cleanups.push(async () => {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGKILL');
        await exited;
      }
    });
    const port = await new Promise<number>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (d) => {
        out += d;
        const m = /"listen":"127\.0\.0\.1:(\d+)"/.exec(out);
        if (m) resolve(Number(m[1]));
      });
      child.once('exit', (code) => reject(new Error(`berth exited ${code}: ${out}`)));
    });
    const url = `http://127.0.0.1:${port}`;
    expect((await fetch(`${url}/readyz`)).status).toBe(200);

    // unshare execs node, so the child's pid is the server's.
    const nsenter = (cmd: string) => run('nsenter', ['-t', String(child.pid), '-m', '--', 'sh', '-c', cmd]);
    await nsenter(`mount --bind '${data}' '${data}' && mount -o remount,ro,bind '${data}'`);
    const res = await fetch(`${url}/readyz`);
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({ status: 'not ready', checks: { database: 'ok', dataDir: 'failed: EROFS', disk: 'ok' } });
    expect((await fetch(`${url}/healthz`)).status).toBe(200);

    await nsenter(`umount '${data}'`);
    expect((await fetch(`${url}/readyz`)).status).toBe(200);
  });
});

describe('read-only mode', () => {
  it('serves pulls, refuses pushes and deletes with 405 UNSUPPORTED, and stays ready', async () => {
    const data = await mkdtemp(join(tmpdir(), 'berth-readonly-'));
    cleanups.push(() => rm(data, { recursive: true, force: true }));
    const writable = await startServer({ listen: '127.0.0.1:0', data, logger: createLogger({ level: 'silent' }) });
    const image = await pushImage(writable.url, 'maint/app', 'v1', 'read-only');
    await writable.close();

    const ro = await startServer({ listen: '127.0.0.1:0', data, logger: createLogger({ level: 'silent' }), readOnly: true });
    cleanups.push(() => ro.close());
    const url = ro.url;

    const manifest = await fetch(`${url}/v2/maint/app/manifests/v1`, { headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } });
    expect(manifest.status).toBe(200);
    expect(Buffer.from(await manifest.arrayBuffer())).toEqual(image.manifest);
    const blob = await fetch(`${url}/v2/maint/app/blobs/${sha256(image.layers[0]!)}`);
    expect(Buffer.from(await blob.arrayBuffer())).toEqual(image.layers[0]);
    expect((await fetch(`${url}/v2/maint/app/tags/list`)).status).toBe(200);
    expect(await (await fetch(`${url}/v2/_catalog`)).json()).toEqual({ repositories: ['maint/app'] });

    const refused = [
      fetch(`${url}/v2/maint/app/blobs/uploads/`, { method: 'POST' }),
      fetch(`${url}/v2/maint/app/blobs/uploads/?digest=${sha256('x')}`, { method: 'POST', body: 'x' }),
      fetch(`${url}/v2/maint/app/manifests/v2`, { method: 'PUT', headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' }, body: image.manifest }),
      fetch(`${url}/v2/maint/app/manifests/${image.digest}`, { method: 'DELETE' }),
      fetch(`${url}/v2/maint/app/blobs/${sha256(image.layers[0]!)}`, { method: 'DELETE' }),
    ];
    for (const res of await Promise.all(refused)) {
      expect(res.status).toBe(405);
      const body = (await res.json()) as { errors: { code: string; message: string }[] };
      expect(body.errors[0]).toEqual({ code: 'UNSUPPORTED', message: READ_ONLY_MESSAGE });
    }
    // Nothing changed underneath.
    expect((await fetch(`${url}/v2/maint/app/manifests/${image.digest}`, { method: 'HEAD' })).status).toBe(200);
    expect((await fetch(`${url}/v2/maint/app/manifests/v2`, { method: 'HEAD' })).status).toBe(404);
    const ready = await fetch(`${url}/readyz`);
    expect(ready.status).toBe(200);
    expect(((await ready.json()) as { checks: Record<string, string> }).checks).toMatchObject({ dataDir: 'skipped' });
  });

  it('is turned on by berth serve --read-only', async () => {
    if (!existsSync(bin)) execFileSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: root });
    const data = await mkdtemp(join(tmpdir(), 'berth-readonly-cli-'));
    cleanups.push(() => rm(data, { recursive: true, force: true }));
    const child = spawn(process.execPath, [bin, 'serve', '--read-only', '--listen', '127.0.0.1:0', '--data', data], { stdio: ['ignore', 'pipe', 'inherit'] });
    cleanups.push(async () => {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    });
    const line = await new Promise<string>((resolve) => {
      let out = '';
      child.stdout!.on('data', (d) => {
        out += d;
        const l = out.split('\n').find((x) => x.includes('listening'));
        if (l) resolve(l);
      });
    });
    const info = JSON.parse(line) as { url: string; readOnly: boolean };
    expect(info.readOnly).toBe(true);
    const res = await fetch(`${info.url}/v2/x/blobs/uploads/?digest=${sha256('y')}`, { method: 'POST', body: 'y' });
    expect(res.status).toBe(405);
    expect(await errorCode(res)).toBe('UNSUPPORTED');
  });
});
