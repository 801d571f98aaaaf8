// Blob GET latency while the token endpoint is flooded with wrong passwords. Password
// hashes (scrypt) run on libuv's thread pool, the one file reads use: unbounded, a flood
// of logins starves the data path. Berth runs as its own process with token auth, and
// the login throttle and the connection cap out of the way (as for a flood from many
// addresses); the
// script times sequential GETs of a 1 MiB blob, first alone, then during waves of
// concurrent logins, and counts the logins' answers (401 evaluated, 429 refused).
//
//   npm run build && node dist/bench/login-flood.js [--logins 300] [--seconds 10]

import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parseArgs } from 'node:util';
import { removeDir, startBerth } from './servers.js';

const { values } = parseArgs({ options: { logins: { type: 'string', default: '300' }, seconds: { type: 'string', default: '10' } } });
const concurrentLogins = Number(values.logins);
const floodMs = Number(values.seconds) * 1000;

const MAIN = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function summary(latencies: number[]): string {
  const sorted = [...latencies].sort((a, b) => a - b);
  const f = (ms: number) => ms.toFixed(1);
  return `${sorted.length} GETs, p50 ${f(percentile(sorted, 50))} ms, p99 ${f(percentile(sorted, 99))} ms, max ${f(sorted.at(-1)!)} ms`;
}

async function timeGets(url: string, token: string, until: () => boolean): Promise<number[]> {
  const latencies: number[] = [];
  while (!until()) {
    const started = performance.now();
    const res = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`blob GET: ${res.status}`);
    latencies.push(performance.now() - started);
  }
  return latencies;
}

async function main(): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'berth-bench-logins-'));
  const config = join(root, 'berth.yaml');
  await writeFile(config, 'auth: {mode: token, loginThrottle: {maxFailures: 1000000, windowSeconds: 60}}\nconnections: {maxPerAddress: 0}\n');
  const berth = await startBerth(root, { quiet: true }, undefined, 'berth', ['--config', config]);
  try {
    const addUser = execFile(process.execPath, [MAIN, 'user', 'add', 'bench', '--admin', '--password-stdin', '--data', berth.dataDir]);
    addUser.stdin!.end('bench-password\n');
    await new Promise((resolve, reject) => addUser.once('exit', (code) => (code === 0 ? resolve(code) : reject(new Error(`user add: ${code}`)))));

    const basic = `Basic ${Buffer.from('bench:bench-password').toString('base64')}`;
    const tokenRes = await fetch(`${berth.url}/auth/token?service=berth-registry&scope=repository:bench/blob:pull,push`, { headers: { authorization: basic } });
    const { token } = (await tokenRes.json()) as { token: string };
    const blob = Buffer.alloc(1 << 20, 7);
    const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
    const push = await fetch(`${berth.url}/v2/bench/blob/blobs/uploads/?digest=${digest}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
      body: blob,
    });
    if (push.status !== 201) throw new Error(`push: ${push.status}`);
    const blobUrl = `${berth.url}/v2/bench/blob/blobs/${digest}`;

    const quietEnd = performance.now() + 2000;
    const quiet = await timeGets(blobUrl, token, () => performance.now() > quietEnd);
    console.log(`alone:        ${summary(quiet)}`);

    // Waves of concurrent wrong logins until the time is up.
    const answers: Record<string, number> = {};
    const floodEnd = performance.now() + floodMs;
    let flooding = true;
    // Each guess different: the same wrong password sent concurrently is checked once.
    let guesses = 0;
    const wrong = () => `Basic ${Buffer.from(`bench:guess-${guesses++}`).toString('base64')}`;
    const flood = (async () => {
      while (performance.now() < floodEnd) {
        const wave = await Promise.all(
          Array.from({ length: concurrentLogins }, () =>
            fetch(`${berth.url}/auth/token?service=berth-registry`, { headers: { authorization: wrong() } }).then(
              async (r) => {
                await r.arrayBuffer();
                return String(r.status);
              },
              () => 'failed',
            ),
          ),
        );
        for (const status of wave) answers[status] = (answers[status] ?? 0) + 1;
      }
      flooding = false;
    })();
    const during = await timeGets(blobUrl, token, () => !flooding);
    await flood;
    console.log(`during flood: ${summary(during)}`);
    console.log(`logins (${concurrentLogins} at a time for ${floodMs / 1000} s): ${JSON.stringify(answers)}`);
  } finally {
    await berth.stop();
    await removeDir(root);
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
