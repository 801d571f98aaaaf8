// Shared pieces of the maintenance and admin commands (gc, retention, scrub, du, user):
// opening the registry the server's configuration names (its data directory, or its
// PostgreSQL database and S3 bucket), human-readable sizes, and --json output.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../config/config.js';
import { openRegistry, type Registry } from '../registry/registry.js';

/** --data and --config of a maintenance command (undefined: not given). */
export interface StorageFlags {
  data?: string;
  config?: string;
}

/**
 * Opens the registry `berth serve` with the same --config (or BERTH_CONFIG, BERTH_*
 * variables) and --data would serve. `mustExist`: refuse a data directory without a
 * database rather than create one (a mistyped --data).
 */
export async function openDataDir(flags: StorageFlags, { mustExist = true } = {}): Promise<Registry> {
  const config = loadConfig({ flags: { config: flags.config, data: flags.data } });
  if (mustExist && !config.database && !existsSync(join(config.data, 'registry.db'))) {
    throw new Error(`no registry at ${config.data}: pass the data directory of a registry with --data (or BERTH_DATA), or the server's --config`);
  }
  return openRegistry(config.data, { storage: { database: config.database, s3: config.storage.s3 } });
}

export { formatBytes } from './sizes.js';

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export const dataOption = ['--data <dir>', 'data directory (env BERTH_DATA; default ./data)'] as const;
export const configOption = ['--config <file>', "the server's config file: its data directory, database and S3 storage (env BERTH_CONFIG)"] as const;
