// One load-generator thread of a fixed-duration request-rate test (see load.ts): keeps
// `connections` keep-alive connections busy with back-to-back requests and reports the
// count and every latency. Started by load.ts with the test in workerData.

import http from 'node:http';
import { parentPort, workerData } from 'node:worker_threads';

export interface LoadJob {
  url: string;
  method: string;
  path: string;
  headers: Record<string, string>;
  connections: number;
  durationMs: number;
  /** The status every reply must have; anything else counts as an error. */
  expect: number;
}

export interface LoadResult {
  requests: number;
  errors: number;
  firstError?: string;
  /** Latencies in milliseconds, unsorted. */
  latencies: Float64Array;
}

const job = workerData as LoadJob;
const agent = new http.Agent({ keepAlive: true, maxSockets: job.connections, maxFreeSockets: job.connections });
const target = new URL(job.path, job.url);

function once(): Promise<{ ok: boolean; detail?: string }> {
  return new Promise((resolve) => {
    const req = http.request(target, { method: job.method, agent, headers: job.headers }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode === job.expect ? { ok: true } : { ok: false, detail: `status ${res.statusCode}` }));
      res.on('error', (err) => resolve({ ok: false, detail: err.message }));
    });
    req.on('error', (err) => resolve({ ok: false, detail: err.message }));
    req.end();
  });
}

async function run(): Promise<LoadResult> {
  let latencies = new Float64Array(1 << 16);
  let requests = 0;
  let errors = 0;
  let firstError: string | undefined;
  const deadline = performance.now() + job.durationMs;
  await Promise.all(
    Array.from({ length: job.connections }, async () => {
      while (performance.now() < deadline) {
        const started = performance.now();
        const r = await once();
        const ms = performance.now() - started;
        if (!r.ok) {
          errors++;
          firstError ??= r.detail;
          continue;
        }
        if (requests === latencies.length) {
          const grown = new Float64Array(latencies.length * 2);
          grown.set(latencies);
          latencies = grown;
        }
        latencies[requests++] = ms;
      }
    }),
  );
  return { requests, errors, firstError, latencies: latencies.slice(0, requests) };
}

// Open the connections first, so the measured run starts warm; then wait for "go".
await Promise.all(Array.from({ length: job.connections }, () => once()));
parentPort!.postMessage({ ready: true });
parentPort!.once('message', async () => {
  const result = await run();
  agent.destroy();
  parentPort!.postMessage({ result }, [result.latencies.buffer as ArrayBuffer]);
});
