// `berth gc`: online garbage collection of a registry's data directory, safe while the
// server runs (see src/registry/gc.ts).

import type { Command } from 'commander';
import { DEFAULT_GRACE_MS } from '../../registry/gc.js';
import { parseDuration } from '../../registry/duration.js';
import { configOption, dataOption, formatBytes, openDataDir, printJson } from '../maintenance.js';
import { formatGraceNote } from '../grace-note.js';

export function register(program: Command): void {
  program
    .command('gc')
    .description('delete blobs and manifests nothing references; safe while the registry serves')
    .option(...dataOption)
    .option(...configOption)
    .option('--dry-run', 'report what would be deleted, delete nothing')
    .option('--delete-untagged', 'also delete manifests no tag, index or subject holds')
    .option('--grace <duration>', 'keep what was uploaded or used this recently', '1h')
    .option('--upload-ttl <duration>', 'remove upload sessions idle this long', '24h')
    .option('--json', 'print the report as JSON')
    .action(async (opts: { data?: string; config?: string; dryRun?: boolean; deleteUntagged?: boolean; grace: string; uploadTtl: string; json?: boolean }) => {
      const registry = await openDataDir(opts);
      try {
        const report = await registry.gc.collect({
          dryRun: opts.dryRun,
          deleteUntagged: opts.deleteUntagged,
          graceMs: opts.grace ? parseDuration(opts.grace) : DEFAULT_GRACE_MS,
          uploadTtlMs: parseDuration(opts.uploadTtl),
        });
        if (opts.json) return printJson(report);
        const verb = report.dryRun ? 'would delete' : 'deleted';
        for (const m of report.manifestsDeleted) process.stdout.write(`${verb} manifest ${m.repository}@${m.digest}\n`);
        process.stdout.write(
          `${verb} ${report.manifestsDeleted.length} manifests, ${report.blobsDeleted} blobs (${formatBytes(report.bytesFreed)} freed), ` +
            `${report.linksRemoved} repository links` +
            (report.dryRun ? '' : `, ${report.uploadsExpired} stale uploads`) +
            ` in ${(report.durationMs / 1000).toFixed(1)} s\n`,
        );
        const note = formatGraceNote(report, opts.grace);
        if (note) process.stdout.write(`${note}\n`);
      } finally {
        await registry.close();
      }
    });
}
