// The reference registry (CNCF distribution, Debian's /usr/bin/docker-registry) on a
// random loopback port with a temporary filesystem root, for interop tests and for
// running the same test against Berth and the reference side by side.
//
//   if (e2eTools('docker-registry')) { const reg = await startReferenceRegistry(); ... await reg.close(); }

import { spawn, type ChildProcess } from 'node:child_process';
import { createServer as createHttpServer, request } from 'node:http';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { TOOLS, tempDir } from './images.js';
import { freePort } from '../../bench/servers.js';

export interface ReferenceRegistry {
  /** `http://127.0.0.1:PORT` */
  url: string;
  /** `127.0.0.1:PORT`, the host part of image references. */
  host: string;
  /** The storage root (blobs under docker/registry/v2/...). */
  root: string;
  close(): Promise<void>;
}

export interface ReferenceRegistryOptions {
  /** Extra top-level YAML appended to the config (e.g. an `auth:` section). */
  extraConfig?: string;
}

export { freePort };

async function waitReady(url: string, child: ChildProcess, output: () => string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited with ${child.exitCode}: ${output()}`);
    try {
      const res = await fetch(`${url}/v2/`);
      await res.arrayBuffer();
      return; // 200, or 401 with auth configured: either way it is serving
    } catch {
      await sleep(50);
    }
  }
  throw new Error(`docker-registry did not start: ${output()}`);
}

/** Starts docker-registry; the port is picked free just before start, retried if taken meanwhile. */
export async function startReferenceRegistry(opts: ReferenceRegistryOptions = {}): Promise<ReferenceRegistry> {
  const dir = await tempDir('berth-refreg-');
  const root = join(dir, 'data');
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const config = join(dir, 'config.yml');
    await writeFile(
      config,
      [
        'version: 0.1',
        'log:',
        '  level: error',
        '  accesslog:',
        '    disabled: true',
        'storage:',
        '  filesystem:',
        `    rootdirectory: ${root}`,
        '  delete:',
        '    enabled: true',
        'http:',
        `  addr: 127.0.0.1:${port}`,
        opts.extraConfig ?? '',
      ].join('\n'),
    );
    const child = spawn(TOOLS['docker-registry'], ['serve', config], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    const url = `http://127.0.0.1:${port}`;
    try {
      await waitReady(url, child, () => output);
    } catch (err) {
      child.kill('SIGKILL');
      if (attempt < 3 && /address already in use/.test(output)) continue;
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
    return {
      url,
      host: `127.0.0.1:${port}`,
      root,
      async close() {
        if (child.exitCode === null) {
          const exited = new Promise((r) => child.once('exit', r));
          child.kill('SIGTERM');
          await Promise.race([exited, sleep(3000).then(() => child.kill('SIGKILL'))]);
        }
        await rm(dir, { recursive: true, force: true });
      },
    };
  }
}

export interface RecordingProxy {
  /** `http://127.0.0.1:PORT`, forwarding to the target registry. */
  url: string;
  host: string;
  /** `METHOD /path?query` of every request, in order. */
  requests: string[];
  /** While down, every connection is cut at once (an upstream that is unreachable). */
  setDown(down: boolean): void;
  /** Lets blob bodies stalled by `stallBlobsAfterBytes` go on. */
  release(): void;
  close(): Promise<void>;
}

export interface ProxyOptions {
  /**
   * Cut the connection of the first `times` blob GETs (default 1) after this many
   * body bytes: a download broken off in the middle, to test resuming.
   */
  dropBlobAfterBytes?: number;
  times?: number;
  /** Flip one byte in the middle of every blob GET's body (a corrupting upstream). */
  corruptBlobs?: boolean;
  /** Headers added to every response (Docker Hub's RateLimit-* ones, say). */
  extraHeaders?: Record<string, string>;
  /** Stop every blob GET's body after this many bytes until `release()` (a slow upstream). */
  stallBlobsAfterBytes?: number;
}

/**
 * A loopback HTTP proxy in front of a registry that records every request (to see what
 * a client did: mounts, uploads, Range requests) and can break blob downloads midway.
 */
export async function startRecordingProxy(target: string, opts: ProxyOptions = {}): Promise<RecordingProxy> {
  const requests: string[] = [];
  let drops = opts.times ?? 1;
  let down = false;
  let released = false;
  const stalled = new Set<() => void>();
  const server = createHttpServer((req, res) => {
    if (down) {
      req.socket.destroy();
      return;
    }
    requests.push(`${req.method} ${req.url}${req.headers.range ? ` range=${req.headers.range}` : ''}`);
    // Host is passed on unchanged, so the Location headers of uploads point back at the proxy.
    const upstream = request(`${target}${req.url}`, { method: req.method, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, { ...up.headers, ...opts.extraHeaders });
      if (opts.stallBlobsAfterBytes !== undefined && req.method === 'GET' && /\/blobs\/sha/.test(req.url ?? '')) {
        let sent = 0;
        up.on('data', (chunk: Buffer) => {
          const room = released ? chunk.length : Math.min(chunk.length, Math.max(0, opts.stallBlobsAfterBytes! - sent));
          res.write(chunk.subarray(0, room));
          sent += room;
          if (room === chunk.length) return;
          up.pause();
          stalled.add(() => {
            res.write(chunk.subarray(room));
            up.resume();
          });
        });
        up.on('end', () => res.end());
        return;
      }
      if (opts.corruptBlobs && req.method === 'GET' && /\/blobs\/sha/.test(req.url ?? '')) {
        const middle = Math.floor(Number(up.headers['content-length'] ?? 0) / 2);
        let at = 0;
        up.on('data', (chunk: Buffer) => {
          if (middle >= at && middle < at + chunk.length) chunk[middle - at] ^= 0xff;
          at += chunk.length;
          res.write(chunk);
        });
        up.on('end', () => res.end());
        return;
      }
      const drop =
        opts.dropBlobAfterBytes !== undefined && drops > 0 && req.method === 'GET' && /\/blobs\/sha/.test(req.url ?? '') &&
        Number(up.headers['content-length'] ?? 0) > opts.dropBlobAfterBytes;
      if (!drop) {
        up.pipe(res);
        return;
      }
      drops--;
      let sent = 0;
      up.on('data', (chunk: Buffer) => {
        const room = opts.dropBlobAfterBytes! - sent;
        if (room <= 0) return;
        res.write(chunk.subarray(0, room));
        sent += Math.min(room, chunk.length);
        if (sent >= opts.dropBlobAfterBytes!) {
          up.destroy();
          // Give the bytes a moment to leave, then cut the connection mid-body.
          setTimeout(() => res.socket?.destroy(), 20);
        }
      });
    });
    upstream.on('error', () => res.socket?.destroy());
    // A client cut off (setDown, a dropped connection) cuts the request to the registry too,
    // as a real network would: the registry then sees the upload end instead of waiting.
    res.on('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    requests,
    release() {
      released = true;
      for (const go of stalled) go();
      stalled.clear();
    },
    setDown(value) {
      down = value;
      if (down) server.closeAllConnections();
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
