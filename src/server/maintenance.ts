// Maintenance inside the running server: on every `gc.interval`, retention rules (if
// any) and then garbage collection, logged with what they freed. A run that finds
// another collection running (say `berth gc` by hand) skips its turn.

import { GcAlreadyRunningError, type GcOptions, type GcReport } from '../registry/gc.js';
import type { RetentionRule } from '../registry/retention.js';
import type { Registry } from '../registry/registry.js';
import type { Logger } from './logger.js';

export interface MaintenanceOptions extends Omit<GcOptions, 'dryRun'> {
  /** Time between runs (ms); no scheduled runs when absent or 0. */
  intervalMs?: number;
  retention?: RetentionRule[];
  /** Told of every finished collection, and of failed runs (metrics). */
  onCollected?: (report: GcReport) => void;
  onFailed?: (err: unknown) => void;
}

export function startMaintenance(registry: Registry, logger: Logger, options: MaintenanceOptions): { stop(): Promise<void> } {
  if (!options.intervalMs) return { stop: async () => undefined };
  let running: Promise<void> | undefined;
  const runOnce = async () => {
    try {
      if (options.retention?.length) {
        const result = await registry.retention.apply(await registry.retention.plan(options.retention));
        if (result.tagsDeleted > 0) logger.info({ ...result }, 'retention applied');
      }
      const report = await registry.gc.collect(options);
      options.onCollected?.(report);
      logger.info(
        { manifests: report.manifestsDeleted.length, blobs: report.blobsDeleted, bytesFreed: report.bytesFreed, uploadsExpired: report.uploadsExpired, ms: report.durationMs },
        'garbage collection finished',
      );
    } catch (err) {
      if (err instanceof GcAlreadyRunningError) logger.info('garbage collection skipped: another one is running');
      else {
        logger.error({ err }, 'maintenance run failed');
        options.onFailed?.(err);
      }
    }
  };
  const timer = setInterval(() => {
    running ??= runOnce().finally(() => (running = undefined));
  }, options.intervalMs);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
