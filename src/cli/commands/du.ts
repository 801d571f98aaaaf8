// `berth du`: storage used by every repository, and the part only it uses.

import type { Command } from 'commander';
import { configOption, dataOption, formatBytes, openDataDir, printJson } from '../maintenance.js';

export function register(program: Command): void {
  program
    .command('du')
    .description('show the storage used by each repository')
    .option(...dataOption)
    .option(...configOption)
    .option('--json', 'print the report as JSON')
    .action(async (opts: { data?: string; config?: string; json?: boolean }) => {
      const registry = await openDataDir(opts);
      try {
        const usage = await registry.usage.report();
        if (opts.json) return printJson(usage);
        const rows = usage.repositories.map((r) => [formatBytes(r.total), formatBytes(r.unique), String(r.blobs), r.repository]);
        const table = [['TOTAL', 'UNIQUE', 'BLOBS', 'REPOSITORY'], ...rows];
        const widths = [0, 1, 2].map((i) => Math.max(...table.map((row) => row[i]!.length)));
        for (const row of table) process.stdout.write(`${row.slice(0, 3).map((c, i) => c.padStart(widths[i]!)).join('  ')}  ${row[3]}\n`);
        process.stdout.write(`stored: ${formatBytes(usage.storedBytes)} in ${usage.storedBlobs} blobs (shared blobs counted once)\n`);
      } finally {
        await registry.close();
      }
    });
}
