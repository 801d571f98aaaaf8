// Crash safety against a real `berth serve` process: SIGKILL in the middle of a large
// streamed upload, of a chunked upload and of a storm of manifest PUTs, then a restart
// on the same data directory; concurrent pushes of one blob; request bodies cut short.
// What must hold (DESIGN.md, "Storage"): nothing acknowledged is lost, nothing partial
// is ever visible, and an upload session continues from what was acknowledged.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, renameSync, statSync } from 'node:fs';
import { request, type IncomingHttpHeaders } from 'node:http';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { startBerthProcess, type BerthProcess } from './helpers/berth-process.js';
import { sha256 } from './helpers/images.js';
import { imageManifest, pushBlob, pushImage } from './helpers/server.js';

const MiB = 1 << 20;

let berth: BerthProcess;
beforeAll(async () => {
  berth = await startBerthProcess();
});
afterAll(async () => {
  await berth?.destroy();
});

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/**
 * One HTTP request on its own connection (no keep-alive pool: pooled sockets would
 * outlive a killed server). The body is a buffer or a stream of chunks, sent with
 * backpressure, so a generated body of hundreds of MB is never held in memory.
 */
function send(path: string, method: string, opts: { headers?: Record<string, string>; body?: Buffer | Iterable<Buffer> } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(`${berth.url}${path}`, { method, headers: opts.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (opts.body === undefined) req.end();
    else if (Buffer.isBuffer(opts.body)) req.end(opts.body);
    else pipeline(Readable.from(opts.body), req).catch(reject);
  });
}

/**
 * Sends the headers (with a Content-Length larger than `part`) and `part`, then closes
 * the connection: a client that died half-way through its body.
 */
function sendTruncated(path: string, method: string, declaredLength: number, part: Buffer, headers: Record<string, string> = {}): Promise<void> {
  return new Promise((resolve) => {
    const req = request(`${berth.url}${path}`, {
      method,
      agent: false,
      headers: { ...headers, 'Content-Length': String(declaredLength) },
    });
    req.on('error', () => undefined); // the destroy below is the point
    req.on('close', () => resolve());
    req.write(part, () => setTimeout(() => req.destroy(), 20));
  });
}

/**
 * `total` bytes in 1 MiB chunks, generated as they are consumed: one random MiB with the
 * chunk number stamped in front, so no two chunks are equal and nothing large is kept.
 */
function* generated(total: number, base = randomBytes(MiB)): Generator<Buffer> {
  for (let offset = 0, i = 0; offset < total; offset += MiB, i++) {
    const chunk = Buffer.from(base.subarray(0, Math.min(MiB, total - offset)));
    chunk.writeUInt32BE(i, 0);
    yield chunk;
  }
}

function digestOf(chunks: Iterable<Buffer>): string {
  const hash = createHash('sha256');
  for (const c of chunks) hash.update(c);
  return `sha256:${hash.digest('hex')}`;
}

const blobFile = (digest: string) => join(berth.dataDir, 'blobs', 'sha256', digest.slice(7, 9), digest.slice(7));
const uploadFile = (location: string) => join(berth.dataDir, 'uploads', location.slice(location.lastIndexOf('/') + 1));
const fileSize = (path: string) => (existsSync(path) ? statSync(path).size : -1);

/** Polls until `check` holds (the server reacts to a dropped connection asynchronously). */
async function until(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await sleep(10);
  }
}

async function startUpload(repo: string): Promise<string> {
  const res = await send(`/v2/${repo}/blobs/uploads/`, 'POST');
  expect(res.status).toBe(202);
  return res.headers.location!;
}

/** The acknowledged length of an upload, from the `Range: 0-<last>` of its status. */
async function uploadOffset(location: string): Promise<number> {
  const res = await send(location, 'GET');
  expect(res.status, res.body.toString()).toBe(204);
  const m = /^0-(\d+)$/.exec(String(res.headers.range));
  expect(m, `Range header ${res.headers.range}`).not.toBeNull();
  // `0-0` is what registries answer for an empty upload (no test here acknowledges one byte).
  const last = Number(m![1]);
  return last === 0 ? 0 : last + 1;
}

function chunkHeaders(start: number, length: number): Record<string, string> {
  return {
    'Content-Type': 'application/octet-stream',
    'Content-Length': String(length),
    'Content-Range': `${start}-${start + length - 1}`,
  };
}

async function expectBlob(repo: string, digest: string, size: number): Promise<void> {
  const res = await send(`/v2/${repo}/blobs/${digest}`, 'GET');
  expect(res.status).toBe(200);
  expect(res.body.length).toBe(size);
  expect(sha256(res.body)).toBe(digest);
}

describe('kill -9 in the middle of a large streamed upload', () => {
  it('shows nothing of the partial blob after a restart, and keeps what was pushed before', async () => {
    const earlier = await pushImage(berth.url, 'dur/big', 'before', 'durability big upload');
    const earlierLayer = randomBytes(8 * MiB);
    const earlierLayerDigest = await pushBlob(berth.url, 'dur/big', earlierLayer);

    const total = 512 * MiB;
    const base = randomBytes(MiB);
    const digest = digestOf(generated(total, base));
    const location = await startUpload('dur/big');
    const uploadsDir = join(berth.dataDir, 'uploads');
    const before = new Set(readdirSync(uploadsDir));
    // Both ways a large blob streams in, at once: a PATCH with chunked transfer (no
    // Content-Range), as docker and skopeo send it, and a monolithic POST with its digest.
    const patch = send(location, 'PATCH', { headers: { 'Content-Type': 'application/octet-stream' }, body: generated(total, base) });
    const post = send(`/v2/dur/big/blobs/uploads/?digest=${digest}`, 'POST', {
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(total) },
      body: generated(total, base),
    });
    for (const p of [patch, post]) p.catch(() => undefined);
    const postFile = () => readdirSync(uploadsDir).find((f) => !before.has(f));
    await until(
      'the server wrote 128 MiB of each upload',
      () => fileSize(uploadFile(location)) >= 128 * MiB && fileSize(join(uploadsDir, postFile() ?? '-')) >= 128 * MiB,
      30_000,
    );
    await berth.kill9();
    await expect(patch).rejects.toThrow();
    await expect(post).rejects.toThrow();
    expect(fileSize(uploadFile(location))).toBeLessThan(total);

    await berth.restart();
    const head = await send(`/v2/dur/big/blobs/${digest}`, 'HEAD');
    expect(head.status).toBe(404);
    expect(existsSync(blobFile(digest))).toBe(false);
    // The PATCH was never acknowledged, so the session stands where it began.
    expect(await uploadOffset(location)).toBe(0);

    const manifest = await send('/v2/dur/big/manifests/before', 'GET', { headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } });
    expect(manifest.status).toBe(200);
    expect(manifest.body.equals(earlier.manifest)).toBe(true);
    expect(manifest.headers['docker-content-digest']).toBe(earlier.digest);
    for (const blob of [earlier.config, ...earlier.layers]) await expectBlob('dur/big', sha256(blob), blob.length);
    await expectBlob('dur/big', earlierLayerDigest, earlierLayer.length);

    // Cancelling the dead session removes its bytes.
    expect((await send(location, 'DELETE')).status).toBe(204);
    expect(existsSync(uploadFile(location))).toBe(false);
  });
});

describe('restart in the middle of a chunked upload', () => {
  it('continues from the acknowledged offset the status reports, and completes with the right digest', async () => {
    const chunks = [randomBytes(4 * MiB), randomBytes(32 * MiB), randomBytes(1 * MiB)];
    const whole = Buffer.concat(chunks);
    const digest = sha256(whole);
    const location = await startUpload('dur/chunked');

    const first = await send(location, 'PATCH', { headers: chunkHeaders(0, chunks[0]!.length), body: chunks[0]! });
    expect(first.status).toBe(202);
    expect(first.headers.range).toBe(`0-${chunks[0]!.length - 1}`);

    // The second chunk is half-way in when the server dies: those bytes were never acknowledged.
    const second = send(location, 'PATCH', {
      headers: chunkHeaders(chunks[0]!.length, chunks[1]!.length),
      body: (function* () {
        yield chunks[1]!.subarray(0, 16 * MiB);
        // Filler, still streaming when the server is killed.
        yield* generated(16 * MiB);
      })(),
    });
    second.catch(() => undefined);
    await until('part of the second chunk reached the file', () => fileSize(uploadFile(location)) >= chunks[0]!.length + 8 * MiB);
    await berth.kill9();
    await expect(second).rejects.toThrow();

    await berth.restart();
    // A client resumes the way the spec says: ask where the upload stands, send from there.
    const offset = await uploadOffset(location);
    expect(offset).toBe(chunks[0]!.length);
    const rest = whole.subarray(offset, offset + chunks[1]!.length);
    const again = await send(location, 'PATCH', { headers: chunkHeaders(offset, rest.length), body: rest });
    expect(again.status, again.body.toString()).toBe(202);
    expect(again.headers.range).toBe(`0-${offset + rest.length - 1}`);

    const last = whole.subarray(offset + rest.length);
    const done = await send(`${location}?digest=${digest}`, 'PUT', {
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(last.length) },
      body: last,
    });
    expect(done.status, done.body.toString()).toBe(201);
    expect(done.headers['docker-content-digest']).toBe(digest);
    await expectBlob('dur/chunked', digest, whole.length);
    expect(existsSync(uploadFile(location))).toBe(false);
  });
});

describe('kill -9 during a storm of manifest PUTs', () => {
  it('leaves every acknowledged tag, and every tag at all, on a complete manifest', async () => {
    const repo = 'dur/storm';
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', storm: true }));
    const layers = [randomBytes(64 * 1024), randomBytes(1024)];
    for (const blob of [config, ...layers]) await pushBlob(berth.url, repo, blob);

    const count = 4000;
    const bodies = Array.from({ length: count }, (_, i) => imageManifest(config, layers, { annotations: { storm: String(i) } }));
    const acknowledged = new Map<number, string>();
    let next = 0;
    let killed: Promise<void> | undefined;
    const worker = async () => {
      while (next < count && !killed) {
        const i = next++;
        let res: Reply;
        try {
          res = await send(`/v2/${repo}/manifests/t${i}`, 'PUT', {
            headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' },
            body: bodies[i]!,
          });
        } catch {
          return; // the server is gone
        }
        expect(res.status, res.body.toString()).toBe(201);
        acknowledged.set(i, String(res.headers['docker-content-digest']));
        // Kill with requests still in flight on the other connections.
        if (acknowledged.size === 300) killed = berth.kill9();
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    expect(killed, 'the storm ended before the kill').toBeDefined();
    await killed;
    await berth.restart();

    for (const [i, digest] of acknowledged) {
      expect(digest).toBe(sha256(bodies[i]!));
      const res = await send(`/v2/${repo}/manifests/t${i}`, 'GET', { headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } });
      expect(res.status).toBe(200);
      expect(res.body.equals(bodies[i]!)).toBe(true);
    }
    // Requests cut by the kill may or may not have landed; whichever tags exist are whole.
    const list = await send(`/v2/${repo}/tags/list`, 'GET');
    const tags = (JSON.parse(list.body.toString()) as { tags: string[] }).tags;
    expect(tags.length).toBeGreaterThanOrEqual(acknowledged.size);
    for (const tag of tags) {
      const res = await send(`/v2/${repo}/manifests/${tag}`, 'GET', { headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } });
      expect(res.status).toBe(200);
      expect(res.body.equals(bodies[Number(tag.slice(1))]!)).toBe(true);
    }
    for (const blob of [config, ...layers]) await expectBlob(repo, sha256(blob), blob.length);

    // Below the API: the database is consistent, and every manifest it records has its
    // exact bytes on disk.
    const db = new Database(join(berth.dataDir, 'registry.db'), { readonly: true });
    try {
      expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
      expect(db.pragma('foreign_key_check')).toEqual([]);
      const rows = db.prepare('SELECT DISTINCT digest, size FROM manifests').all() as { digest: string; size: number }[];
      for (const row of rows) {
        const file = blobFile(row.digest);
        expect(fileSize(file), `${row.digest} on disk`).toBe(row.size);
      }
    } finally {
      db.close();
    }
  });
});

describe('the same blob pushed to different repositories at once', () => {
  it('succeeds for every client and stores one file', async () => {
    const blob = randomBytes(24 * MiB);
    const digest = sha256(blob);
    const repos = ['dur/same-a', 'dur/same-b', 'dur/same-c', 'dur/same-d'];
    // Two push in one streamed PATCH then PUT, two in a monolithic POST: all at once.
    const sessions = await Promise.all(repos.slice(0, 2).map((repo) => startUpload(repo)));
    const streamed = sessions.map(async (location) => {
      const patch = await send(location, 'PATCH', { headers: { 'Content-Type': 'application/octet-stream' }, body: [blob] });
      expect(patch.status).toBe(202);
      return send(`${location}?digest=${digest}`, 'PUT');
    });
    const monolithic = repos.slice(2).map((repo) =>
      send(`/v2/${repo}/blobs/uploads/?digest=${digest}`, 'POST', {
        headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(blob.length) },
        body: blob,
      }),
    );
    const results = await Promise.all([...streamed, ...monolithic]);
    for (const res of results) {
      expect(res.status, res.body.toString()).toBe(201);
      expect(res.headers['docker-content-digest']).toBe(digest);
    }
    for (const repo of repos) await expectBlob(repo, digest, blob.length);

    const dir = join(berth.dataDir, 'blobs', 'sha256', digest.slice(7, 9));
    expect(readdirSync(dir).filter((f) => f.startsWith(digest.slice(7)))).toEqual([digest.slice(7)]);
    expect(fileSize(blobFile(digest))).toBe(blob.length);
    for (const location of sessions) expect(existsSync(uploadFile(location))).toBe(false);
  });
});

describe('request bodies cut short (Content-Length larger than what is sent, then the socket closed)', () => {
  it('leave a chunked upload at its acknowledged offset, for every kind of request', async () => {
    const chunks = [randomBytes(1 * MiB), randomBytes(2 * MiB), randomBytes(3 * MiB), randomBytes(MiB / 2)];
    const whole = Buffer.concat(chunks);
    const digest = sha256(whole);
    const location = await startUpload('dur/truncated');
    let offset = 0;

    const cutShort = async (method: string, path: string, length: number, headers: Record<string, string>) => {
      await sendTruncated(path, method, length, whole.subarray(offset, offset + length / 2), headers);
      // The server drops the unacknowledged bytes once it sees the connection gone.
      await until('the upload file is back at the acknowledged length', () => fileSize(uploadFile(location)) === offset);
      expect(await uploadOffset(location)).toBe(offset);
    };
    const appended = async (res: Reply, length: number) => {
      expect(res.status, res.body.toString()).toBe(202);
      offset += length;
      expect(res.headers.range).toBe(`0-${offset - 1}`);
    };

    await appended(await send(location, 'PATCH', { headers: chunkHeaders(0, chunks[0]!.length), body: chunks[0]! }), chunks[0]!.length);

    // A chunk with Content-Range.
    const ranged = chunkHeaders(offset, chunks[1]!.length);
    await cutShort('PATCH', location, chunks[1]!.length, { 'Content-Range': ranged['Content-Range']! });
    await appended(await send(location, 'PATCH', { headers: ranged, body: chunks[1]! }), chunks[1]!.length);

    // A streamed PATCH without Content-Range.
    await cutShort('PATCH', location, chunks[2]!.length, {});
    await appended(
      await send(location, 'PATCH', { headers: { 'Content-Length': String(chunks[2]!.length) }, body: chunks[2]! }),
      chunks[2]!.length,
    );

    // The closing PUT with a last chunk: no blob, and the session is still there.
    await cutShort('PUT', `${location}?digest=${digest}`, chunks[3]!.length, {});
    expect((await send(`/v2/dur/truncated/blobs/${digest}`, 'HEAD')).status).toBe(404);
    expect(existsSync(blobFile(digest))).toBe(false);
    const done = await send(`${location}?digest=${digest}`, 'PUT', {
      headers: { 'Content-Length': String(chunks[3]!.length) },
      body: chunks[3]!,
    });
    expect(done.status, done.body.toString()).toBe(201);
    await expectBlob('dur/truncated', digest, whole.length);
  });

  it('leave nothing behind from a monolithic POST', async () => {
    const blob = randomBytes(4 * MiB);
    const digest = sha256(blob);
    const uploadsBefore = readdirSync(join(berth.dataDir, 'uploads')).length;
    await sendTruncated(`/v2/dur/truncated-post/blobs/uploads/?digest=${digest}`, 'POST', blob.length, blob.subarray(0, MiB));
    await until('the temporary upload file is removed', () => readdirSync(join(berth.dataDir, 'uploads')).length === uploadsBefore);
    expect((await send(`/v2/dur/truncated-post/blobs/${digest}`, 'HEAD')).status).toBe(404);
    expect(existsSync(blobFile(digest))).toBe(false);
  });
});

describe('closing an upload after a crash', () => {
  it('commits only the acknowledged bytes, not what a killed request left after them', async () => {
    const acked = randomBytes(1 * MiB);
    const digest = sha256(acked);
    const location = await startUpload('dur/close-after-crash');
    const first = await send(location, 'PATCH', { headers: chunkHeaders(0, acked.length), body: acked });
    expect(first.status).toBe(202);
    const cut = send(location, 'PATCH', { headers: chunkHeaders(acked.length, 16 * MiB), body: generated(16 * MiB) });
    cut.catch(() => undefined);
    await until('part of the second chunk reached the file', () => fileSize(uploadFile(location)) >= acked.length + 4 * MiB);
    await berth.kill9();
    await expect(cut).rejects.toThrow();
    await berth.restart();

    // The client settles for what was acknowledged: the blob is those bytes exactly.
    expect(await uploadOffset(location)).toBe(acked.length);
    const done = await send(`${location}?digest=${digest}`, 'PUT');
    expect(done.status, done.body.toString()).toBe(201);
    expect(fileSize(blobFile(digest))).toBe(acked.length);
    await expectBlob('dur/close-after-crash', digest, acked.length);
  });

  it('answers a retried PUT after a crash between the rename into blobs/ and the database commit', async () => {
    const blob = randomBytes(2 * MiB);
    const digest = sha256(blob);
    const location = await startUpload('dur/rename-crash');
    const patch = await send(location, 'PATCH', { headers: chunkHeaders(0, blob.length), body: blob });
    expect(patch.status).toBe(202);
    await berth.kill9();
    // The state a SIGKILL leaves between the two steps of a commit: the verified upload
    // file was renamed to its blob path, the transaction recording it never committed
    // (the session is still open at its full offset, no blob row).
    mkdirSync(join(berth.dataDir, 'blobs', 'sha256', digest.slice(7, 9)), { recursive: true });
    renameSync(uploadFile(location), blobFile(digest));
    await berth.restart();

    expect((await send(`/v2/dur/rename-crash/blobs/${digest}`, 'HEAD')).status).toBe(404);
    // The client retries its PUT: a spec answer (done, or start over), never a 500.
    const retried = await send(`${location}?digest=${digest}`, 'PUT');
    if (retried.status !== 201) {
      expect(retried.status, retried.body.toString()).toBe(404);
      expect(JSON.parse(retried.body.toString()).errors[0].code).toBe('BLOB_UPLOAD_UNKNOWN');
      const again = await send(`/v2/dur/rename-crash/blobs/uploads/?digest=${digest}`, 'POST', {
        headers: { 'Content-Length': String(blob.length) },
        body: blob,
      });
      expect(again.status).toBe(201);
    }
    await expectBlob('dur/rename-crash', digest, blob.length);
  });
});
