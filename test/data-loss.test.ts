// The "data loss and crashes" items of issue #18, against real processes: `berth gc`
// killed at random points of a sweep, a dry run beside a held write lock, a blob DELETE
// of a layer a manifest uses, upload files that no session owns, and a full disk (a
// small tmpfs: needs root, as CI runs).

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, rmSync, utimesSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startBerthProcess, type BerthProcess } from './helpers/berth-process.js';
import { errorCode, pushImage, sha256, startTestServer } from './helpers/server.js';
import { openRegistry } from '../src/registry/registry.js';

const MAIN = fileURLToPath(new URL('../dist/src/cli/main.js', import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs `berth <args>`; resolves to its exit code and output. */
function berthCli(args: string[]): { child: ReturnType<typeof spawn>; done: Promise<{ code: number | null; output: string }> } {
  const child = spawn(process.execPath, [MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  const done = new Promise<{ code: number | null; output: string }>((resolve) => child.once('exit', (code) => resolve({ code, output })));
  return { child, done };
}

/** Runs `work` on every item, `width` at a time. */
async function inParallel<T>(items: T[], width: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) await work(items[next++]!);
    }),
  );
}

describe('berth gc killed in the middle of a sweep', () => {
  let berth: BerthProcess;
  beforeAll(async () => {
    berth = await startBerthProcess();
  });
  afterAll(async () => {
    await berth?.destroy();
  });

  it('leaves no row without its file: every blob pushed again afterwards pulls back whole', async () => {
    const COUNT = 1000;
    const blobs = Array.from({ length: COUNT }, (_, i) => Buffer.concat([Buffer.from(`blob ${i} `), randomBytes(64 + (i % 200))]));
    const push = async (blob: Buffer) => {
      const res = await fetch(`${berth.url}/v2/gc/kill/blobs/uploads/?digest=${sha256(blob)}`, { method: 'POST', body: blob });
      expect(res.status).toBe(201);
    };
    await inParallel(blobs, 32, push);

    // Nothing references them: a collection with no grace deletes every one. Kill it at
    // a random point of its sweep, three times, each time once some more are gone.
    const db = new Database(join(berth.dataDir, 'registry.db'), { readonly: true });
    const rows = () => (db.prepare('SELECT count(*) AS n FROM blobs').get() as { n: number }).n;
    for (let round = 0; round < 3; round++) {
      const before = rows();
      const target = before - 20 - Math.floor(Math.random() * Math.min(300, before / 3));
      const gc = berthCli(['gc', '--data', berth.dataDir, '--grace', '1ms']);
      for (let i = 0; i < 2000 && rows() > target && gc.child.exitCode === null; i++) await sleep(2);
      gc.child.kill('SIGKILL');
      await gc.done;
      expect(rows()).toBeLessThan(before);
    }
    db.close();

    // The next collection is not refused (the dead runner's lease is gone) and finds work.
    const again = await berthCli(['gc', '--data', berth.dataDir, '--grace', '1h']).done;
    expect(again.output).not.toMatch(/already running/);
    expect(again.code).toBe(0);

    // Pushed again, every one of them is served again, byte for byte.
    await inParallel(blobs, 32, push);
    await inParallel(blobs, 32, async (blob) => {
      const res = await fetch(`${berth.url}/v2/gc/kill/blobs/${sha256(blob)}`);
      expect(res.status).toBe(200);
      expect(Buffer.from(await res.arrayBuffer()).equals(blob)).toBe(true);
    });
  }, 240_000);
});

describe('berth gc --dry-run', () => {
  it('reads only: it completes while another connection holds the write lock', async () => {
    const server = await startTestServer({ touchIntervalMs: 20 });
    try {
      await pushImage(server.url, 'dry/app', 'v1', 'dry run');
      await fetch(`${server.url}/v2/dry/app/manifests/v1`, { method: 'DELETE' });
      const lock = new Database(join(server.dataDir, 'registry.db'));
      lock.prepare('BEGIN IMMEDIATE').run();
      const registry = await openRegistry(server.dataDir);
      try {
        const started = Date.now();
        const report = await registry.gc.collect({ dryRun: true, graceMs: 0, deleteUntagged: true, settleMs: 0 });
        expect(Date.now() - started).toBeLessThan(3000);
        expect(report.manifestsDeleted).toHaveLength(1);
        expect(report.blobsDeleted).toBe(4); // the manifest's bytes, its config and two layers
      } finally {
        lock.prepare('ROLLBACK').run();
        lock.close();
        await registry.close();
      }
      // Nothing was deleted.
      expect((await fetch(`${server.url}/v2/dry/app/manifests/v1`, { method: 'HEAD' })).status).toBe(404);
    } finally {
      await server.destroy();
    }
  });
});

describe('blob DELETE of a layer a manifest uses', () => {
  it('is refused with DENIED, naming the manifest; the image still pulls', async () => {
    const server = await startTestServer();
    try {
      const image = await pushImage(server.url, 'del/app', 'v1', 'held layer');
      const layer = sha256(image.layers[0]!);
      const res = await fetch(`${server.url}/v2/del/app/blobs/${layer}`, { method: 'DELETE' });
      expect(res.status).toBe(403);
      const body = (await res.json()) as { errors: { code: string; detail: { manifests: string[] } }[] };
      expect(body.errors[0]!.code).toBe('DENIED');
      expect(body.errors[0]!.detail.manifests).toEqual([image.digest]);
      expect((await fetch(`${server.url}/v2/del/app/blobs/${layer}`)).status).toBe(200);
      // Once the manifest is gone, the layer may go.
      expect((await fetch(`${server.url}/v2/del/app/manifests/${image.digest}`, { method: 'DELETE' })).status).toBe(202);
      expect((await fetch(`${server.url}/v2/del/app/blobs/${layer}`, { method: 'DELETE' })).status).toBe(202);
      expect(await errorCode(await fetch(`${server.url}/v2/del/app/blobs/${layer}`))).toBe('BLOB_UNKNOWN');
    } finally {
      await server.destroy();
    }
  });
});

describe('upload files without a session', () => {
  it('are removed at start-up; the file of a session stays and the upload goes on', async () => {
    const first = await startTestServer();
    const start = await fetch(`${first.url}/v2/orphans/app/blobs/uploads/`, { method: 'POST' });
    const location = start.headers.get('location')!;
    await fetch(`${first.url}${location}`, { method: 'PATCH', body: 'first half ' });
    await first.close();

    // What a crash leaves: a monolithic upload's file and a manifest's temp file, just written.
    const uploads = join(first.dataDir, 'uploads');
    mkdirSync(uploads, { recursive: true });
    const orphans = [randomUUID(), `manifest-${randomUUID()}`].map((name) => join(uploads, name));
    for (const file of orphans) writeFileSync(file, randomBytes(1024));
    utimesSync(orphans[0]!, new Date(), new Date());

    const second = await startTestServer({ data: first.dataDir });
    try {
      for (const file of orphans) expect(existsSync(file)).toBe(false);
      const blob = Buffer.from('first half second half');
      const put = await fetch(`${second.url}${location}?digest=${sha256(blob)}`, { method: 'PUT', body: 'second half' });
      expect(put.status).toBe(201);
      expect(Buffer.from(await (await fetch(`${second.url}/v2/orphans/app/blobs/${sha256(blob)}`)).arrayBuffer()).equals(blob)).toBe(true);
    } finally {
      await second.destroy();
    }
  });
});

/** Mounts a tmpfs of `size` at `at`; the reason when it cannot (not root). */
function mountTmpfs(at: string, size: string): string | undefined {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', at], { stdio: 'pipe' });
    return undefined;
  } catch (err) {
    return (err as { stderr?: Buffer }).stderr?.toString().trim() || String(err);
  }
}

/** Writes a file until the file system is full. */
function fill(path: string): void {
  const fd = openSync(path, 'a');
  const chunk = Buffer.alloc(64 * 1024);
  try {
    for (;;) writeSync(fd, chunk);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    closeSync(fd);
  }
}

const full = { at: mkdtempSync(join(tmpdir(), 'berth-full-')), failure: undefined as string | undefined };
full.failure = mountTmpfs(full.at, '1m');
if (full.failure) {
  if (process.env.BERTH_REQUIRE_E2E === '1') throw new Error(`cannot mount a tmpfs for the full-disk test (BERTH_REQUIRE_E2E=1): ${full.failure}`);
  process.stderr.write(`skipping the full-disk test: cannot mount a tmpfs (needs root): ${full.failure}\n`);
} else {
  execFileSync('umount', [full.at]);
}

describe.skipIf(full.failure !== undefined)('a full disk', () => {
  beforeAll(() => {
    mountTmpfs(full.at, '24m');
  });
  afterAll(() => {
    execFileSync('umount', [full.at]);
    rmSync(full.at, { recursive: true, force: true });
  });

  it('keeps pulls working, lets the server start, refuses pushes with 507, and gc frees space', async () => {
    const data = join(full.at, 'data');
    let server = await startTestServer({ data, touchIntervalMs: 50 });
    const image = await pushImage(server.url, 'full/app', 'v1', 'full disk');
    const layer = sha256(image.layers[0]!);
    const filler = join(full.at, 'filler');
    fill(filler);
    try {
      // Pulls go on over many touch flushes, each of which finds the disk full.
      for (let i = 0; i < 10; i++) {
        expect((await fetch(`${server.url}/v2/full/app/manifests/v1`)).status).toBe(200);
        expect(Buffer.from(await (await fetch(`${server.url}/v2/full/app/blobs/${layer}`)).arrayBuffer()).equals(image.layers[0]!)).toBe(true);
        await sleep(30);
      }
      await server.close();
      fill(filler); // whatever a failed write gave back
      server = await startTestServer({ data, touchIntervalMs: 50 });
      expect((await fetch(`${server.url}/v2/full/app/blobs/${layer}`)).status).toBe(200);
      const big = randomBytes(8 << 20);
      const refused = await fetch(`${server.url}/v2/full/app/blobs/uploads/?digest=${sha256(big)}`, { method: 'POST', body: big });
      expect(refused.status).toBe(507);
      expect(readdirSync(join(data, 'uploads')).filter((f) => f.startsWith('manifest-'))).toEqual([]);

      // Deleting and collecting work on the full disk, and free the space.
      expect((await fetch(`${server.url}/v2/full/app/manifests/${image.digest}`, { method: 'DELETE' })).status).toBe(202);
      const report = await server.registry.gc.collect({ graceMs: 0, settleMs: 0 });
      expect(report.blobsDeleted).toBe(4);
    } finally {
      rmSync(filler, { force: true });
      await server.destroy();
    }
  }, 60_000);
});
