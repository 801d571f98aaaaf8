// Shared pieces of the maintenance commands (gc, retention, scrub, du): opening the
// data directory, human-readable sizes, and --json output.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { openRegistry, type Registry } from '../registry/registry.js';

export async function openDataDir(dir: string): Promise<Registry> {
  if (!existsSync(join(dir, 'registry.db'))) {
    throw new Error(`no registry at ${dir}: pass the data directory of a registry with --data (or BERTH_DATA)`);
  }
  return openRegistry(dir);
}

export { formatBytes } from './sizes.js';

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export const dataOption = ['--data <dir>', 'data directory (env BERTH_DATA)', process.env.BERTH_DATA ?? 'data'] as const;
