// The "data loss and crashes" items of issue #18, against real processes: `berth gc`
// killed at random points of a sweep, a dry run beside a held write lock, a blob DELETE
// of a layer a manifest uses, and upload files that no session owns.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import { spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, utimesSync, writeFileSync } from 'node:fs';
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
