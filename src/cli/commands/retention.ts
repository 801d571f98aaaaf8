// `berth retention`: applies retention rules (keep the newest N tags, delete tags older
// than a duration, protect tag patterns) from a YAML file or from flags.

import type { Command } from 'commander';
import { readFile } from 'node:fs/promises';
import { parse } from 'yaml';
import { parseRetentionRules, type RetentionRule } from '../../registry/retention.js';
import { configOption, dataOption, openDataDir, printJson } from '../maintenance.js';

export function register(program: Command): void {
  program
    .command('retention')
    .description('delete tags (and the manifests they alone held) by retention rules')
    .option(...dataOption)
    .option(...configOption)
    .option('--rules <file>', 'YAML file with a `retention:` list of rules')
    .option('--repositories <glob>', 'a single rule: the repositories it governs', '**')
    .option('--keep-last <n>', 'a single rule: keep the newest N tags')
    .option('--older-than <duration>', 'a single rule: delete tags older than this (e.g. 30d)')
    .option('--protect <globs>', 'a single rule: comma-separated tag globs never deleted', 'latest')
    .option('--dry-run', 'show what would go, delete nothing')
    .option('--json', 'print the decisions as JSON')
    .action(async (opts: { data?: string; config?: string; rules?: string; repositories: string; keepLast?: string; olderThan?: string; protect: string; dryRun?: boolean; json?: boolean }) => {
      let rules: RetentionRule[];
      if (opts.rules) {
        const doc = parse(await readFile(opts.rules, 'utf8')) as { retention?: unknown } | null;
        rules = parseRetentionRules(doc?.retention);
      } else {
        rules = parseRetentionRules([
          {
            repositories: opts.repositories,
            ...(opts.keepLast !== undefined ? { keepLast: Number(opts.keepLast) } : {}),
            ...(opts.olderThan !== undefined ? { olderThan: opts.olderThan } : {}),
            protect: opts.protect.split(',').filter(Boolean),
          },
        ]);
      }
      const registry = await openDataDir(opts);
      try {
        const plan = await registry.retention.plan(rules);
        const result = opts.dryRun ? undefined : await registry.retention.apply(plan);
        if (opts.json) return printJson({ dryRun: !!opts.dryRun, decisions: plan, ...result });
        const verb = opts.dryRun ? 'would delete' : 'deleted';
        for (const d of plan) process.stdout.write(`${verb} ${d.repository}:${d.tag} (${d.reason})\n`);
        process.stdout.write(
          result
            ? `deleted ${result.tagsDeleted} tags and ${result.manifestsDeleted} manifests; run \`berth gc\` to free their blobs\n`
            : `${plan.length} tags would be deleted\n`,
        );
      } finally {
        await registry.close();
      }
    });
}
