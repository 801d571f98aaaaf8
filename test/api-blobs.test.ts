// The blob endpoints and the upload state machine, against a real server.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from 'node:net';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { Writable } from 'node:stream';
import { createLogger } from '../src/server/logger.js';
import { join } from 'node:path';
import { errorCode, pushBlob, sha256, sha512, startTestServer, type TestServer } from './helpers/server.js';
import { REPLICA_RUN } from './helpers/replicas.js';

let srv: TestServer;
beforeAll(async () => {
  srv = await startTestServer();
});
afterAll(async () => {
  await srv.destroy();
});

const v2 = (path: string) => `${srv.url}/v2/${path}`;

async function startUpload(repo: string): Promise<string> {
  const res = await fetch(v2(`${repo}/blobs/uploads/`), { method: 'POST' });
  expect(res.status).toBe(202);
  expect(res.headers.get('docker-upload-uuid')).toMatch(/^[0-9a-f-]{36}$/);
  expect(res.headers.get('range')).toBe('0-0');
  return res.headers.get('location')!;
}

/** Sends a raw request whose body stops short of its Content-Length, then closes. */
function sendTruncated(path: string, method: string, declared: number, sent: Buffer, headers: Record<string, string> = {}): Promise<void> {
  const { port } = new URL(srv.url);
  return new Promise((resolve) => {
    const socket = connect(Number(port), '127.0.0.1', () => {
      const head = [`${method} ${path} HTTP/1.1`, `Host: 127.0.0.1:${port}`, `Content-Length: ${declared}`, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`), '', ''].join('\r\n');
      socket.write(head);
      socket.write(sent, () => setTimeout(() => socket.destroy(), 50));
    });
    socket.on('close', () => setTimeout(resolve, 50));
    socket.on('error', () => undefined);
  });
}

describe('ping', () => {
  it('answers /v2/ with the API version header', async () => {
    const res = await fetch(`${srv.url}/v2/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('docker-distribution-api-version')).toBe('registry/2.0');
  });
});

describe('blob GET and HEAD', () => {
  const data = Buffer.from('0123456789abcdef');
  let digest: string;
  beforeAll(async () => {
    digest = await pushBlob(srv.url, 'blobs/get', data);
  });

  it('HEAD gives digest, length and Accept-Ranges without a body', async () => {
    const res = await fetch(v2(`blobs/get/blobs/${digest}`), { method: 'HEAD' });
    expect(res.status).toBe(200);
    expect(res.headers.get('docker-content-digest')).toBe(digest);
    expect(res.headers.get('content-length')).toBe(String(data.length));
    expect(res.headers.get('accept-ranges')).toBe('bytes');
    expect((await res.arrayBuffer()).byteLength).toBe(0);
  });

  it('GET returns the exact bytes', async () => {
    const res = await fetch(v2(`blobs/get/blobs/${digest}`));
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer())).toEqual(data);
  });

  it('serves byte ranges with 206 and Content-Range', async () => {
    const res = await fetch(v2(`blobs/get/blobs/${digest}`), { headers: { Range: 'bytes=4-7' } });
    expect(res.status).toBe(206);
    expect(res.headers.get('content-range')).toBe(`bytes 4-7/${data.length}`);
    expect(Buffer.from(await res.arrayBuffer()).toString()).toBe('4567');
    const open = await fetch(v2(`blobs/get/blobs/${digest}`), { headers: { Range: 'bytes=10-' } });
    expect(Buffer.from(await open.arrayBuffer()).toString()).toBe('abcdef');
    const suffix = await fetch(v2(`blobs/get/blobs/${digest}`), { headers: { Range: 'bytes=-3' } });
    expect(Buffer.from(await suffix.arrayBuffer()).toString()).toBe('def');
  });

  it('answers 416 with Content-Range for an unsatisfiable range', async () => {
    const res = await fetch(v2(`blobs/get/blobs/${digest}`), { headers: { Range: 'bytes=16-20' } });
    expect(res.status).toBe(416);
    expect(res.headers.get('content-range')).toBe(`bytes */${data.length}`);
  });

  it('does not serve a blob from a repository that does not link it', async () => {
    const res = await fetch(v2(`blobs/other/blobs/${digest}`));
    expect(res.status).toBe(404);
    expect(await errorCode(res)).toBe('BLOB_UNKNOWN');
  });

  it('404 BLOB_UNKNOWN for an unknown digest, 400 DIGEST_INVALID for a malformed one', async () => {
    const unknown = await fetch(v2(`blobs/get/blobs/${sha256('nothing')}`));
    expect(unknown.status).toBe(404);
    expect(await errorCode(unknown)).toBe('BLOB_UNKNOWN');
    const bad = await fetch(v2('blobs/get/blobs/sha256:xyz'));
    expect(bad.status).toBe(400);
    expect(await errorCode(bad)).toBe('DIGEST_INVALID');
    const short = await fetch(v2('blobs/get/blobs/sha256:abcd'));
    expect(await errorCode(short)).toBe('DIGEST_INVALID');
  });

  it('a download larger than the read buffers arrives whole; a client that hangs up mid-way harms nothing', async () => {
    const big = Buffer.alloc(5 * 1024 * 1024 + 123);
    for (let i = 0; i < big.length; i += 4096) big.writeUInt32LE(i, i);
    const bigDigest = await pushBlob(srv.url, 'blobs/big', big);
    const whole = await fetch(v2(`blobs/big/blobs/${bigDigest}`));
    expect(sha256(Buffer.from(await whole.arrayBuffer()))).toBe(bigDigest);
    const ranged = await fetch(v2(`blobs/big/blobs/${bigDigest}`), { headers: { Range: 'bytes=1048570-3145730' } });
    // equals(), not toEqual(): deep equality walks 2 MiB byte by byte for seconds.
    expect(Buffer.from(await ranged.arrayBuffer()).equals(big.subarray(1048570, 3145731))).toBe(true);
    const { port } = new URL(srv.url);
    await new Promise<void>((resolve) => {
      const socket = connect(Number(port), '127.0.0.1', () => {
        socket.write(`GET /v2/blobs/big/blobs/${bigDigest} HTTP/1.1\r\nHost: x\r\n\r\n`);
      });
      socket.once('data', () => socket.destroy());
      socket.on('close', () => resolve());
    });
    const again = await fetch(v2(`blobs/big/blobs/${bigDigest}`));
    expect(sha256(Buffer.from(await again.arrayBuffer()))).toBe(bigDigest);
  });

  it('DELETE unlinks the blob from the repository only', async () => {
    const shared = await pushBlob(srv.url, 'blobs/del-a', 'shared bytes');
    await pushBlob(srv.url, 'blobs/del-b', 'shared bytes');
    const del = await fetch(v2(`blobs/del-a/blobs/${shared}`), { method: 'DELETE' });
    expect(del.status).toBe(202);
    expect((await fetch(v2(`blobs/del-a/blobs/${shared}`), { method: 'HEAD' })).status).toBe(404);
    expect((await fetch(v2(`blobs/del-b/blobs/${shared}`), { method: 'HEAD' })).status).toBe(200);
    const again = await fetch(v2(`blobs/del-a/blobs/${shared}`), { method: 'DELETE' });
    expect(again.status).toBe(404);
  });
});

describe('uploads', () => {
  it('monolithic POST with digest stores the blob (201, Location, digest)', async () => {
    const data = Buffer.from('monolithic');
    const digest = sha256(data);
    const res = await fetch(v2(`up/mono/blobs/uploads/?digest=${digest}`), { method: 'POST', body: data });
    expect(res.status).toBe(201);
    expect(res.headers.get('location')).toBe(`/v2/up/mono/blobs/${digest}`);
    expect(res.headers.get('docker-content-digest')).toBe(digest);
  });

  it('an empty blob can be pushed and pulled', async () => {
    const digest = await pushBlob(srv.url, 'up/empty', Buffer.alloc(0));
    const res = await fetch(v2(`up/empty/blobs/${digest}`));
    expect(res.status).toBe(200);
    expect(res.headers.get('content-length')).toBe('0');
  });

  it('POST then PUT with the whole body', async () => {
    const data = Buffer.from('post then put');
    const location = await startUpload('up/postput');
    const res = await fetch(`${srv.url}${location}?digest=${sha256(data)}`, { method: 'PUT', body: data, headers: { 'Content-Type': 'application/octet-stream' } });
    expect(res.status).toBe(201);
    expect(res.headers.get('docker-content-digest')).toBe(sha256(data));
    const get = await fetch(v2(`up/postput/blobs/${sha256(data)}`));
    expect(Buffer.from(await get.arrayBuffer())).toEqual(data);
  });

  it('streamed PATCH without Content-Range, then PUT', async () => {
    const parts = [Buffer.from('stream-one;'), Buffer.from('stream-two;')];
    const location = await startUpload('up/stream');
    for (const part of parts) {
      const res = await fetch(`${srv.url}${location}`, { method: 'PATCH', body: part });
      expect(res.status).toBe(202);
      expect(res.headers.get('location')).toBe(location);
    }
    const all = Buffer.concat(parts);
    const status = await fetch(`${srv.url}${location}`);
    expect(status.status).toBe(204);
    expect(status.headers.get('range')).toBe(`0-${all.length - 1}`);
    const put = await fetch(`${srv.url}${location}?digest=${sha256(all)}`, { method: 'PUT' });
    expect(put.status).toBe(201);
  });

  it('chunked PATCH with Content-Range; 416 when a chunk is out of order; last chunk on the PUT', async () => {
    const data = Buffer.from('chunk-A|chunk-B|chunk-C');
    const location = await startUpload('up/chunked');
    const first = await fetch(`${srv.url}${location}`, { method: 'PATCH', body: data.subarray(0, 8), headers: { 'Content-Range': '0-7' } });
    expect(first.status).toBe(202);
    expect(first.headers.get('range')).toBe('0-7');
    const skipped = await fetch(`${srv.url}${location}`, { method: 'PATCH', body: data.subarray(16), headers: { 'Content-Range': `16-${data.length - 1}` } });
    expect(skipped.status).toBe(416);
    expect(skipped.headers.get('range')).toBe('0-7');
    const replay = await fetch(`${srv.url}${location}`, { method: 'PATCH', body: data.subarray(0, 8), headers: { 'Content-Range': '0-7' } });
    expect(replay.status).toBe(416);
    const second = await fetch(`${srv.url}${location}`, { method: 'PATCH', body: data.subarray(8, 16), headers: { 'Content-Range': '8-15' } });
    expect(second.status).toBe(202);
    expect(second.headers.get('range')).toBe('0-15');
    const put = await fetch(`${srv.url}${location}?digest=${sha256(data)}`, {
      method: 'PUT',
      body: data.subarray(16),
      headers: { 'Content-Range': `16-${data.length - 1}` },
    });
    expect(put.status).toBe(201);
    const get = await fetch(v2(`up/chunked/blobs/${sha256(data)}`));
    expect(Buffer.from(await get.arrayBuffer())).toEqual(data);
  });

  it('a wrong digest is DIGEST_INVALID and nothing is stored', async () => {
    const res = await fetch(v2(`up/wrong/blobs/uploads/?digest=${sha256('other content')}`), { method: 'POST', body: 'this content' });
    expect(res.status).toBe(400);
    expect(await errorCode(res)).toBe('DIGEST_INVALID');
    expect((await fetch(v2(`up/wrong/blobs/${sha256('other content')}`), { method: 'HEAD' })).status).toBe(404);
    expect((await fetch(v2(`up/wrong/blobs/${sha256('this content')}`), { method: 'HEAD' })).status).toBe(404);
    const location = await startUpload('up/wrong');
    await fetch(`${srv.url}${location}`, { method: 'PATCH', body: 'abc' });
    const put = await fetch(`${srv.url}${location}?digest=${sha256('abd')}`, { method: 'PUT' });
    expect(await errorCode(put)).toBe('DIGEST_INVALID');
  });

  it('a PUT without digest is refused and the upload goes on', async () => {
    const location = await startUpload('up/nodigest');
    await fetch(`${srv.url}${location}`, { method: 'PATCH', body: 'xyz' });
    const put = await fetch(`${srv.url}${location}`, { method: 'PUT' });
    expect(put.status).toBe(400);
    expect(await errorCode(put)).toBe('DIGEST_INVALID');
    const done = await fetch(`${srv.url}${location}?digest=${sha256('xyz')}`, { method: 'PUT' });
    expect(done.status).toBe(201);
  });

  it('sha512 digests are verified; other algorithms are UNSUPPORTED', async () => {
    const data = Buffer.from('five hundred and twelve');
    const res = await fetch(v2(`up/sha512/blobs/uploads/?digest=${sha512(data)}`), { method: 'POST', body: data });
    expect(res.status).toBe(201);
    const head = await fetch(v2(`up/sha512/blobs/${sha512(data)}`), { method: 'HEAD' });
    expect(head.headers.get('docker-content-digest')).toBe(sha512(data));
    const location = await startUpload('up/sha512');
    await fetch(`${srv.url}${location}`, { method: 'PATCH', body: data });
    expect((await fetch(`${srv.url}${location}?digest=${sha512(data)}`, { method: 'PUT' })).status).toBe(201);
    const md5 = await fetch(v2(`up/sha512/blobs/uploads/?digest=md5:${'a'.repeat(32)}`), { method: 'POST', body: data });
    expect(md5.status).toBe(400);
    expect(await errorCode(md5)).toBe('UNSUPPORTED');
  });

  // This and the two tests below look at the filesystem driver's files: not on replicas (S3).
  it.skipIf(REPLICA_RUN)('cancel (DELETE) ends the session and removes its file', async () => {
    const location = await startUpload('up/cancel');
    await fetch(`${srv.url}${location}`, { method: 'PATCH', body: 'some bytes' });
    const uuid = location.split('/').pop()!;
    expect(existsSync(join(srv.dataDir, 'uploads', uuid))).toBe(true);
    const del = await fetch(`${srv.url}${location}`, { method: 'DELETE' });
    expect(del.status).toBe(204);
    expect(existsSync(join(srv.dataDir, 'uploads', uuid))).toBe(false);
    const status = await fetch(`${srv.url}${location}`);
    expect(status.status).toBe(404);
    expect(await errorCode(status)).toBe('BLOB_UPLOAD_UNKNOWN');
  });

  it('unknown upload sessions are BLOB_UPLOAD_UNKNOWN, also from another repository', async () => {
    const missing = await fetch(v2('up/x/blobs/uploads/00000000-0000-4000-8000-000000000000'), { method: 'PATCH', body: 'a' });
    expect(missing.status).toBe(404);
    expect(await errorCode(missing)).toBe('BLOB_UPLOAD_UNKNOWN');
    const junk = await fetch(v2('up/x/blobs/uploads/not-a-uuid'));
    expect(await errorCode(junk)).toBe('BLOB_UPLOAD_UNKNOWN');
    const location = await startUpload('up/owner');
    const uuid = location.split('/').pop()!;
    const elsewhere = await fetch(v2(`up/intruder/blobs/uploads/${uuid}`));
    expect(elsewhere.status).toBe(404);
  });

  it('a truncated PATCH body leaves the upload at its acknowledged offset', async () => {
    const location = await startUpload('up/truncated');
    await fetch(`${srv.url}${location}`, { method: 'PATCH', body: 'first;', headers: { 'Content-Range': '0-5' } });
    await sendTruncated(location, 'PATCH', 1000, Buffer.from('partial'), { 'Content-Range': '6-1005' });
    const status = await fetch(`${srv.url}${location}`);
    expect(status.headers.get('range')).toBe('0-5');
    const rest = Buffer.from('second');
    const next = await fetch(`${srv.url}${location}`, { method: 'PATCH', body: rest, headers: { 'Content-Range': `6-${6 + rest.length - 1}` } });
    expect(next.status).toBe(202);
    const all = Buffer.concat([Buffer.from('first;'), rest]);
    expect((await fetch(`${srv.url}${location}?digest=${sha256(all)}`, { method: 'PUT' })).status).toBe(201);
  });

  it('a truncated monolithic upload stores nothing', async () => {
    const data = Buffer.alloc(4096, 7);
    await sendTruncated(`/v2/up/trunc-mono/blobs/uploads/?digest=${sha256(data)}`, 'POST', data.length, data.subarray(0, 1000));
    expect((await fetch(v2(`up/trunc-mono/blobs/${sha256(data)}`), { method: 'HEAD' })).status).toBe(404);
    const stored = join(srv.dataDir, 'blobs', 'sha256', sha256(data).slice(7, 9));
    expect(existsSync(stored) ? readdirSync(stored).includes(sha256(data).slice(7)) : false).toBe(false);
  });

  it('a Content-Length that disagrees with Content-Range is SIZE_INVALID', async () => {
    const location = await startUpload('up/size');
    const res = await fetch(`${srv.url}${location}`, { method: 'PATCH', body: 'abcd', headers: { 'Content-Range': '0-9' } });
    expect(res.status).toBe(400);
    expect(await errorCode(res)).toBe('SIZE_INVALID');
  });
});

describe('internal errors', () => {
  it.skipIf(REPLICA_RUN)('answer 500 with the request id, log it, and reveal no path or stack', async () => {
    const lines: string[] = [];
    const destination = new Writable({ write(chunk, _enc, done) { lines.push(String(chunk)); done(); } });
    const own = await startTestServer({ logger: createLogger({ level: 'info', destination }) });
    try {
      const digest = await pushBlob(own.url, 'err/lost', 'a blob whose file disappears');
      rmSync(join(own.dataDir, 'blobs', 'sha256', digest.slice(7, 9), digest.slice(7)));
      const res = await fetch(`${own.url}/v2/err/lost/blobs/${digest}`);
      expect(res.status).toBe(500);
      const text = await res.text();
      const body = JSON.parse(text) as { errors: { code: string; detail: { requestId: string } }[] };
      expect(body.errors[0]!.code).toBe('UNKNOWN');
      const requestId = body.errors[0]!.detail.requestId;
      expect(res.headers.get('x-request-id')).toBe(requestId);
      expect(text).not.toContain(own.dataDir);
      expect(text).not.toMatch(/ENOENT|at \w+ \(/);
      const logged = lines.map((l) => JSON.parse(l) as { requestId?: string; msg?: string; err?: { message: string } }).find((l) => l.msg === 'internal error');
      expect(logged?.requestId).toBe(requestId);
      expect(logged?.err?.message).toMatch(/ENOENT/);
    } finally {
      await own.destroy();
    }
  });
});

describe('upload sessions across a restart', () => {
  it('a chunked upload continues where it was after the server restarts', async () => {
    const own = await startTestServer();
    const data = Buffer.from('before the restart|after the restart');
    const res = await fetch(`${own.url}/v2/restart/me/blobs/uploads/`, { method: 'POST' });
    const location = res.headers.get('location')!;
    await fetch(`${own.url}${location}`, { method: 'PATCH', body: data.subarray(0, 19), headers: { 'Content-Range': '0-18' } });
    await own.close();
    const again = await startTestServer({ data: own.dataDir });
    try {
      const status = await fetch(`${again.url}${location}`);
      expect(status.status).toBe(204);
      expect(status.headers.get('range')).toBe('0-18');
      const patch = await fetch(`${again.url}${location}`, { method: 'PATCH', body: data.subarray(19), headers: { 'Content-Range': `19-${data.length - 1}` } });
      expect(patch.status).toBe(202);
      const put = await fetch(`${again.url}${location}?digest=${sha256(data)}`, { method: 'PUT' });
      expect(put.status).toBe(201);
      const get = await fetch(`${again.url}/v2/restart/me/blobs/${sha256(data)}`);
      expect(Buffer.from(await get.arrayBuffer())).toEqual(data);
    } finally {
      await again.destroy();
    }
  });
});

describe('cross-repository mount', () => {
  it('mounts from a named repository (201) without uploading', async () => {
    const digest = await pushBlob(srv.url, 'mount/src', 'mountable');
    const res = await fetch(v2(`mount/dst/blobs/uploads/?mount=${digest}&from=mount/src`), { method: 'POST' });
    expect(res.status).toBe(201);
    expect(res.headers.get('location')).toBe(`/v2/mount/dst/blobs/${digest}`);
    expect(res.headers.get('docker-content-digest')).toBe(digest);
    expect((await fetch(v2(`mount/dst/blobs/${digest}`), { method: 'HEAD' })).status).toBe(200);
  });

  it('mounts without from when any repository has the blob', async () => {
    const digest = await pushBlob(srv.url, 'mount/anywhere', 'mount me without from');
    const res = await fetch(v2(`mount/nofrom/blobs/uploads/?mount=${digest}`), { method: 'POST' });
    expect(res.status).toBe(201);
  });

  it('falls back to a normal upload (202) when the blob cannot be mounted', async () => {
    const digest = sha256('never pushed');
    const res = await fetch(v2(`mount/dst/blobs/uploads/?mount=${digest}&from=mount/src`), { method: 'POST' });
    expect(res.status).toBe(202);
    expect(res.headers.get('location')).toMatch(/^\/v2\/mount\/dst\/blobs\/uploads\/[0-9a-f-]{36}$/);
    const other = await pushBlob(srv.url, 'mount/elsewhere', 'in another repo');
    const wrongFrom = await fetch(v2(`mount/dst/blobs/uploads/?mount=${other}&from=mount/src`), { method: 'POST' });
    expect(wrongFrom.status).toBe(202);
    const badFrom = await fetch(v2(`mount/dst/blobs/uploads/?mount=${other}&from=Mount/../elsewhere`), { method: 'POST' });
    expect(badFrom.status).toBe(202);
  });
});

describe('concurrent pushes of one blob', () => {
  it.skipIf(REPLICA_RUN)('both succeed and one file is stored', async () => {
    const data = Buffer.alloc(2 * 1024 * 1024, 'x');
    const digest = sha256(data);
    const blobsBefore = filesUnder(join(srv.dataDir, 'blobs'));
    const uploadsBefore = filesUnder(join(srv.dataDir, 'uploads'));
    const results = await Promise.all(
      ['conc/a', 'conc/b', 'conc/c', 'conc/d'].map((repo) => fetch(v2(`${repo}/blobs/uploads/?digest=${digest}`), { method: 'POST', body: data })),
    );
    expect(results.map((r) => r.status)).toEqual([201, 201, 201, 201]);
    // One new file in the store, and no upload's bytes left behind beside it.
    expect(filesUnder(join(srv.dataDir, 'blobs'))).toEqual([...blobsBefore, join(srv.dataDir, 'blobs', 'sha256', digest.slice(7, 9), digest.slice(7))].sort());
    expect(filesUnder(join(srv.dataDir, 'uploads'))).toEqual(uploadsBefore);
    for (const repo of ['conc/a', 'conc/d']) {
      const res = await fetch(v2(`${repo}/blobs/${digest}`));
      expect(sha256(Buffer.from(await res.arrayBuffer()))).toBe(digest);
    }
  });
});

/** Every file below `dir`, sorted. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name))
    .sort();
}
