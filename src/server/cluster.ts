// `berth serve --workers N`: N processes serve one port and one data directory (Node's
// cluster module: the primary accepts connections and hands them to the workers in
// turn). Everything the workers share lives in the storage (upload sessions and their
// leases, the GC runner's lease, the webhook delivery lease, touches), so a request may
// land on any of them. The primary serves nothing: it readies the data directory once
// (migrations, upload files a crash left), starts the workers, restarts one that dies,
// and stops them all on SIGTERM/SIGINT.

import cluster, { type Worker } from 'node:cluster';
import { openRegistry, type StorageConfig } from '../registry/registry.js';
import type { Logger } from './logger.js';

/** A worker that keeps dying is restarted at most this often. */
const RESTART_DELAY_MS = 1000;

/** Whether this process is a worker of `berth serve --workers N`. */
export function isWorker(): boolean {
  return cluster.isWorker;
}

export async function runPrimary(options: { workers: number; data: string; readOnly: boolean; logger: Logger; storage?: StorageConfig }): Promise<void> {
  const { workers, logger } = options;
  // Once, before any worker serves: no worker may have an upload file in flight yet
  // (unless the database is shared with other replicas: then only gc removes them).
  const registry = await openRegistry(options.data, { readOnly: options.readOnly, storage: options.storage, sweepOrphanUploads: !options.storage?.database });
  await registry.close();

  let stopping = false;
  const listening = new Set<number>();
  const fork = () => cluster.fork();
  cluster.on('listening', (worker: Worker) => listening.add(worker.id));
  cluster.on('exit', (worker: Worker, code, signal) => {
    if (stopping) return;
    if (!listening.has(worker.id)) {
      // It failed to start (its error is in the log above): another would fail the same way.
      logger.error({ worker: worker.process.pid, code, signal }, 'a worker could not start: stopping');
      stop('SIGTERM', 1);
      return;
    }
    logger.error({ worker: worker.process.pid, code, signal }, 'a worker died: starting another');
    setTimeout(fork, RESTART_DELAY_MS).unref();
  });
  for (let i = 0; i < workers; i++) fork();

  function stop(signal: NodeJS.Signals, exitCode = 0): void {
    if (stopping) return;
    stopping = true;
    logger.info({ signal, workers }, 'shutting down: the workers finish their requests in flight');
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill(signal);
    const wait = setInterval(() => {
      if (Object.keys(cluster.workers ?? {}).length === 0) {
        clearInterval(wait);
        process.exit(exitCode);
      }
    }, 50);
  }
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  // SIGHUP (a renewed TLS certificate) is for every worker.
  process.on('SIGHUP', () => {
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGHUP');
  });
}
