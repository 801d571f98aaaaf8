// `berth serve` as users run it: settings from flags and BERTH_* variables, one log
// line per request, and a clean stop on SIGTERM that lets a request in flight finish.

import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sha256 } from './helpers/server.js';
import { freePort } from './helpers/reference-registry.js';

const root = join(import.meta.dirname, '..');
const bin = join(root, 'dist', 'src', 'cli', 'main.js');

beforeAll(() => {
  // `npm test` builds first; a lone `vitest run` of this file may not have.
  if (!existsSync(bin)) execFileSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: root });
});

interface Proc {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

function startBerth(args: string[], env: Record<string, string> = {}): Promise<Proc> {
  const child = spawn(process.execPath, [bin, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    const check = setInterval(() => {
      if (out.includes('listening')) {
        clearInterval(check);
        resolve({ child, output: () => out, exited });
      }
    }, 20);
    exited.then((code) => {
      clearInterval(check);
      reject(new Error(`berth serve exited with ${code}: ${out}`));
    });
  });
}

const procs: Proc[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const p of procs.splice(0)) p.child.kill('SIGKILL');
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

describe('berth serve', () => {
  it('takes --listen and --data, logs a line per request', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-cli-'));
    dirs.push(dir);
    const port = await freePort();
    const p = await startBerth(['serve', '--listen', `127.0.0.1:${port}`, '--data', dir]);
    procs.push(p);
    const res = await fetch(`http://127.0.0.1:${port}/v2/_catalog`);
    expect(await res.json()).toEqual({ repositories: [] });
    expect(existsSync(join(dir, 'registry.db'))).toBe(true);
    await new Promise((r) => setTimeout(r, 100));
    const line = p.output().split('\n').find((l) => l.includes('/v2/_catalog'));
    expect(line).toBeDefined();
    expect(JSON.parse(line!)).toMatchObject({ method: 'GET', path: '/v2/_catalog', status: 200 });
  });

  it('takes BERTH_LISTEN and BERTH_DATA', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-cli-'));
    dirs.push(dir);
    const port = await freePort();
    const p = await startBerth(['serve'], { BERTH_LISTEN: `127.0.0.1:${port}`, BERTH_DATA: dir });
    procs.push(p);
    expect((await fetch(`http://127.0.0.1:${port}/v2/`)).status).toBe(200);
    expect(existsSync(join(dir, 'registry.db'))).toBe(true);
  });

  it('on SIGTERM finishes the upload in flight, then exits 0', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-cli-'));
    dirs.push(dir);
    const port = await freePort();
    const p = await startBerth(['serve', '--listen', `127.0.0.1:${port}`, '--data', dir]);
    procs.push(p);
    const data = Buffer.alloc(1024 * 1024, 'z');
    const digest = sha256(data);
    const status = new Promise<number>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, method: 'POST', path: `/v2/drain/me/blobs/uploads/?digest=${digest}`, headers: { 'Content-Length': data.length } }, (res) => {
        res.resume();
        resolve(res.statusCode!);
      });
      req.on('error', reject);
      // Half the body now, SIGTERM, then the rest: the server must wait for it.
      req.write(data.subarray(0, data.length / 2));
      setTimeout(() => {
        p.child.kill('SIGTERM');
        setTimeout(() => req.end(data.subarray(data.length / 2)), 300);
      }, 200);
    });
    expect(await status).toBe(201);
    expect(await p.exited).toBe(0);
    expect(existsSync(join(dir, 'blobs', 'sha256', digest.slice(7, 9), digest.slice(7)))).toBe(true);
  });
});
