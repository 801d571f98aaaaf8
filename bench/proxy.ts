// The pull-through cache's speed: one large blob pulled (and verified by the client)
// directly from an upstream, then through Berth's cache for the first time (fetched
// upstream while streamed and stored), then again from the cache. The upstream is the
// reference registry (CNCF distribution) on loopback; each round pushes a fresh blob,
// so every first pull is a real miss. A push of the same size straight to Berth is
// measured too: a first pull stores through the same path (hash, write, fsync), so it
// cannot beat it.
//
//   npm run build && node dist/bench/proxy.js [--size 512MiB] [--rounds 3] [--cpu-prof DIR]

import { writeFile } from 'node:fs/promises';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { generatedBlob } from './blobdata.js';
import { BenchClient } from './client.js';
import { removeDir, startBerth, startReference, type Target } from './servers.js';

const { values } = parseArgs({
  options: { size: { type: 'string', default: '256MiB' }, rounds: { type: 'string', default: '3' }, 'cpu-prof': { type: 'string' } },
});
const size = parseSize(values.size!);
const rounds = Number(values.rounds);

function parseSize(s: string): number {
  const m = /^(\d+)(MiB|GiB)$/.exec(s);
  if (!m) throw new Error(`--size: expected e.g. 256MiB or 1GiB, got ${s}`);
  return Number(m[1]) * (m[2] === 'GiB' ? 1024 ** 3 : 1024 ** 2);
}

async function timedPull(client: BenchClient, repo: string, digest: string): Promise<number> {
  const started = performance.now();
  const got = await client.pullVerified(repo, digest);
  if (got !== size) throw new Error(`pulled ${got} bytes, expected ${size}`);
  return size / 1e6 / ((performance.now() - started) / 1000);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'berth-bench-proxy-'));
  const servers: Target[] = [];
  try {
    const upstream = await startReference(root, { quiet: true });
    servers.push(upstream);
    const config = join(root, 'berth.yaml');
    await writeFile(config, `proxy:\n  - prefix: upstream.example\n    url: ${upstream.url}\n`);
    const berth = await startBerth(root, { quiet: true }, values['cpu-prof'], 'berth', ['--config', config]);
    servers.push(berth);
    const direct = new BenchClient(upstream.url, 1);
    const cached = new BenchClient(berth.url, 1);
    const figures = { direct: [] as number[], first: [] as number[], cached: [] as number[], push: [] as number[] };
    for (let round = 1; round <= rounds; round++) {
      const blob = generatedBlob(size);
      await direct.pushBlob('bench/big', blob.digest, size, blob.stream());
      figures.direct.push(await timedPull(direct, 'bench/big', blob.digest));
      figures.first.push(await timedPull(cached, 'upstream.example/bench/big', blob.digest));
      figures.cached.push(await timedPull(cached, 'upstream.example/bench/big', blob.digest));
      const local = generatedBlob(size);
      const started = performance.now();
      await cached.pushBlob('bench/pushed', local.digest, size, local.stream());
      figures.push.push(size / 1e6 / ((performance.now() - started) / 1000));
      const last = (k: keyof typeof figures) => figures[k].at(-1)!.toFixed(0);
      console.error(`round ${round}: direct ${last('direct')}, first ${last('first')}, cached ${last('cached')}, push to Berth ${last('push')} MB/s`);
    }
    direct.close();
    cached.close();
    const d = median(figures.direct);
    console.log(`pull of a ${values.size} blob, client verifies sha256, median of ${rounds} (MB/s):`);
    console.log(`  direct from the upstream (reference registry)  ${d.toFixed(0)}`);
    console.log(`  first pull through Berth's cache               ${median(figures.first).toFixed(0)}  (${(median(figures.first) / d).toFixed(2)}x direct)`);
    console.log(`  cached pull from Berth                         ${median(figures.cached).toFixed(0)}  (${(median(figures.cached) / d).toFixed(2)}x direct)`);
    console.log(`  for scale: a push of the same size to Berth    ${median(figures.push).toFixed(0)}`);
  } finally {
    for (const s of servers) await s.stop();
    await removeDir(root);
  }
}

await main();
