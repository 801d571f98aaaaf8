// A full disk in the middle of an upload: the push fails with a clear error, nothing
// already stored is touched, and once space is free again pushes work. The data
// directory is a small tmpfs, so this needs root (CI runs as root).

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pushBlob, sha256, startTestServer, type TestServer } from './helpers/server.js';

const MiB = 1 << 20;

function mountTmpfs(dir: string, size: string): string | undefined {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'pipe' });
    return undefined;
  } catch (err) {
    return (err as { stderr?: Buffer }).stderr?.toString().trim() || String(err);
  }
}

const mountPoint = mkdtempSync(join(tmpdir(), 'berth-full-'));
const mountFailure = mountTmpfs(mountPoint, '24m');
if (mountFailure) {
  if (process.env.BERTH_REQUIRE_E2E === '1') throw new Error(`cannot mount a tmpfs for the disk-full test (BERTH_REQUIRE_E2E=1): ${mountFailure}`);
  process.stderr.write(`skipping the disk-full test: cannot mount a tmpfs (needs root): ${mountFailure}\n`);
}

describe.skipIf(mountFailure !== undefined)('a disk that fills up during a push', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ data: join(mountPoint, 'data') });
  });
  afterAll(async () => {
    // The PUT that was refused may still be sending: do not wait for it.
    server?.server.closeAllConnections();
    await server?.close();
    execFileSync('umount', [mountPoint]);
    rmSync(mountPoint, { recursive: true, force: true });
  });

  it('fails the push with an error, keeps what was stored and frees the space it took', async () => {
    const kept = randomBytes(2 * MiB);
    const keptDigest = await pushBlob(server.url, 'full/repo', kept);

    const big = randomBytes(40 * MiB);
    const start = await fetch(`${server.url}/v2/full/repo/blobs/uploads/`, { method: 'POST' });
    expect(start.status).toBe(202);
    const put = await fetch(`${server.url}${start.headers.get('location')}?digest=${sha256(big)}`, {
      method: 'PUT',
      headers: { 'Content-Type': 'application/octet-stream' },
      body: big,
    }).catch((err: Error) => err);
    if (put instanceof Error) throw put;
    expect(put.status).toBe(507);
    const body = (await put.json()) as { errors: { code: string; message: string }[] };
    expect(body.errors[0]!.message).toMatch(/no space left/i);

    // Not stored, and the blob pushed before is whole.
    expect((await fetch(`${server.url}/v2/full/repo/blobs/${sha256(big)}`, { method: 'HEAD' })).status).toBe(404);
    const got = Buffer.from(await (await fetch(`${server.url}/v2/full/repo/blobs/${keptDigest}`)).arrayBuffer());
    expect(sha256(got)).toBe(keptDigest);

    // The failed body's bytes are gone (its session is back at offset 0), so the next push fits.
    const uploads = join(mountPoint, 'data', 'uploads');
    expect(readdirSync(uploads).map((f) => statSync(join(uploads, f)).size)).toEqual([0]);
    const next = randomBytes(4 * MiB);
    expect(await pushBlob(server.url, 'full/repo', next)).toBe(sha256(next));
  });
});
