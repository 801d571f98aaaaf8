// Fixed-duration request-rate tests (blob HEAD, manifest GET, tags list, catalog): the
// concurrent clients are spread over several worker threads so that one event loop on
// the client side does not cap the rate, and the generator's own CPU use is measured
// (process-wide, all threads) so the table shows whether it was the bottleneck.

import { Worker } from 'node:worker_threads';
import type { LoadJob, LoadResult } from './load-worker.js';

export interface RateResult {
  requests: number;
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** Client CPU time over wall time: 100 = one core busy. */
  generatorCpuPercent: number;
  seconds: number;
}

export async function runRate(job: Omit<LoadJob, 'connections'> & { concurrency: number; threads: number }): Promise<RateResult> {
  const threads = Math.max(1, Math.min(job.threads, job.concurrency));
  const workers = Array.from({ length: threads }, (_, i) => {
    // Spread the connections evenly: 64 over 3 threads is 22, 21, 21.
    const connections = Math.floor(job.concurrency / threads) + (i < job.concurrency % threads ? 1 : 0);
    const data: LoadJob = { ...job, connections };
    return new Worker(new URL('./load-worker.js', import.meta.url), { workerData: data });
  });
  const message = (w: Worker) =>
    new Promise<{ ready?: boolean; result?: LoadResult }>((resolve, reject) => {
      w.once('message', resolve);
      w.once('error', reject);
    });
  await Promise.all(workers.map(message));
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  const pending = workers.map(message);
  for (const w of workers) w.postMessage('go');
  const results = (await Promise.all(pending)).map((m) => m.result!);
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  await Promise.all(workers.map((w) => w.terminate()));

  const errors = results.reduce((n, r) => n + r.errors, 0);
  if (errors > 0) {
    throw new Error(`${job.method} ${job.path}: ${errors} failed requests (${results.find((r) => r.firstError)?.firstError})`);
  }
  const all = new Float64Array(results.reduce((n, r) => n + r.latencies.length, 0));
  let at = 0;
  for (const r of results) {
    all.set(r.latencies, at);
    at += r.latencies.length;
  }
  all.sort();
  return {
    requests: all.length,
    perSecond: all.length / seconds,
    p50Ms: percentile(all, 0.5),
    p99Ms: percentile(all, 0.99),
    generatorCpuPercent: ((cpu.user + cpu.system) / 1e6 / seconds) * 100,
    seconds,
  };
}

function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
}
