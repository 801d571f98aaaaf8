// Limits at the HTTP level against a real server on a random port, talked to over raw
// sockets where a client must misbehave: a request body that trickles is cut while a slow
// one that keeps moving is not, one address cannot hold more than its share of
// connections, and an upload's Content-Range must fit its own total.

import { connect, type Socket } from 'node:net';
import { request } from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/config.js';
import { errorCode, sha256, startTestServer, type TestServer } from './helpers/server.js';

/** The server's port, for raw sockets. */
function open(server: TestServer): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(server.port, '127.0.0.1', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Resolves with what the server sent once it closes the socket, or with `null` if it is still open after `ms`. */
function closedWithin(socket: Socket, ms: number): Promise<string | null> {
  return new Promise((resolve) => {
    let received = '';
    socket.on('data', (d) => (received += d.toString()));
    const timer = setTimeout(() => resolve(null), ms);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(received);
    });
    socket.on('error', () => {});
  });
}

async function startUpload(server: TestServer, repo: string): Promise<string> {
  const res = await fetch(`${server.url}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  expect(res.status).toBe(202);
  return new URL(res.headers.get('location')!, server.url).pathname;
}

describe('request bodies that stop moving', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ connections: { bodyTimeout: 300 } });
  });
  afterAll(() => server?.destroy());

  it('cuts a body that trickles a byte at a time', async () => {
    const path = await startUpload(server, 'slow/trickle');
    const socket = await open(server);
    socket.write(`PATCH ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000\r\n\r\n`);
    const closed = closedWithin(socket, 4000);
    const trickle = setInterval(() => socket.writable && socket.write('x'), 100);
    const started = performance.now();
    const received = await closed;
    clearInterval(trickle);
    socket.destroy();
    console.log('trickling body: closed after ms', received === null ? 'never (4000+)' : Math.round(performance.now() - started));
    expect(received).not.toBeNull();
    expect(performance.now() - started).toBeLessThan(2000);
  });

  it('lets a slow upload that keeps moving finish, over many timeouts', async () => {
    const path = await startUpload(server, 'slow/honest');
    const data = Buffer.alloc(96 * 1024, 'b');
    const digest = sha256(data);
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(`${server.url}${path}?digest=${digest}`, {
        method: 'PUT',
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(data.length) },
      });
      req.on('response', (res) => {
        res.resume();
        resolve(res.statusCode!);
      });
      req.on('error', reject);
      // 4 KiB every 100 ms: about 40 KB/s, 2.4 s in all, eight times the timeout.
      let offset = 0;
      const timer = setInterval(() => {
        req.write(data.subarray(offset, offset + 4096));
        offset += 4096;
        if (offset >= data.length) {
          clearInterval(timer);
          req.end();
        }
      }, 100);
    });
    expect(status).toBe(201);
    const res = await fetch(`${server.url}/v2/slow/honest/blobs/${digest}`);
    expect(Buffer.from(await res.arrayBuffer()).equals(data)).toBe(true);
  });
});

describe('connections per address', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ connections: { maxPerAddress: 4 } });
  });
  afterAll(() => server?.destroy());

  it('closes connections beyond the cap at once, and takes new ones when others close', async () => {
    const held = await Promise.all(Array.from({ length: 4 }, () => open(server)));
    const extra = await open(server);
    extra.write('GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n');
    const answer = await closedWithin(extra, 2000);
    expect(answer).toBe('');
    // The held ones still work.
    held[0]!.write('GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    expect(await closedWithin(held[0]!, 2000)).toMatch(/^HTTP\/1\.1 200/);
    // One slot is free again.
    const next = await open(server);
    next.write('GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    expect(await closedWithin(next, 2000)).toMatch(/^HTTP\/1\.1 200/);
    for (const s of held) s.destroy();
  });
});

describe('Content-Range of an upload chunk', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server?.destroy());

  it('answers 416 to a range whose total is smaller than its end', async () => {
    const path = await startUpload(server, 'range/total');
    const res = await fetch(`${server.url}${path}`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/octet-stream', 'content-range': '0-4/3' },
      body: 'hello',
    });
    expect(res.status).toBe(416);
    expect(await errorCode(res)).toBe('BLOB_UPLOAD_INVALID');
    const ok = await fetch(`${server.url}${path}`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/octet-stream', 'content-range': '0-4/5' },
      body: 'hello',
    });
    expect(ok.status).toBe(202);
  });
});

describe('configuration of the limits and of the proxies in front', () => {
  it('reads publicUrl, trustedProxies and connections, and names a bad proxy entry', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-limits-config-'));
    try {
      const file = join(dir, 'berth.yaml');
      await writeFile(file, 'trustedProxies: [127.0.0.1, 10.0.0.0/8, "fd00::/8"]\nconnections: {maxPerAddress: 32, bodyTimeout: 10s}\n');
      const config = loadConfig({ flags: { config: file, publicUrl: 'https://registry.example.com' }, env: {} });
      expect(config.publicUrl).toBe('https://registry.example.com');
      expect(config.trustedProxies).toEqual(['127.0.0.1', '10.0.0.0/8', 'fd00::/8']);
      expect(config.connections).toEqual({ maxPerAddress: 32, bodyTimeout: 10_000 });
      expect(loadConfig({ flags: {}, env: {} }).connections).toEqual({ maxPerAddress: 256, bodyTimeout: 30_000 });
      await writeFile(file, 'trustedProxies: [10.0.0.0/33]\n');
      expect(() => loadConfig({ flags: { config: file }, env: {} })).toThrow(/trustedProxies\[0\].*10\.0\.0\.0\/33.*CIDR/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
