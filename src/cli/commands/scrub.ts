// `berth scrub`: re-hashes every blob and checks metadata against files.

import type { Command } from 'commander';
import { configOption, dataOption, formatBytes, openDataDir, printJson } from '../maintenance.js';

export function register(program: Command): void {
  program
    .command('scrub')
    .description('verify every blob file and the metadata; quarantine corrupt blobs')
    .option(...dataOption)
    .option(...configOption)
    .option('--repair', 'forget rows whose file is gone or corrupt, remove files without rows')
    .option('--json', 'print the report as JSON')
    .action(async (opts: { data?: string; config?: string; repair?: boolean; json?: boolean }) => {
      const registry = await openDataDir(opts);
      try {
        const r = await registry.scrub.run({ repair: opts.repair });
        const problems = r.corrupted.length + r.missingFiles.length + r.wrongSize.length + r.orphanFiles.length + r.brokenManifests.length + r.danglingTags.length;
        if (opts.json) printJson(r);
        else {
          const out = (line: string) => process.stdout.write(`${line}\n`);
          out(`checked ${r.checked} blobs (${formatBytes(r.bytesChecked)})`);
          for (const c of r.corrupted) out(`corrupt: ${c.digest} (moved to ${c.quarantinedTo})`);
          for (const d of r.missingFiles) out(`missing file: ${d}`);
          for (const d of r.wrongSize) out(`size differs from the record: ${d}`);
          for (const d of r.orphanFiles) out(`file without a record: ${d}${r.repaired ? ' (removed)' : ''}`);
          for (const m of r.brokenManifests) out(`manifest ${m.repository}@${m.manifest} references missing ${m.missing}`);
          for (const t of r.danglingTags) out(`tag ${t.repository}:${t.tag} points at no manifest`);
          out(problems === 0 ? 'no problems found' : `${problems} problems${r.repaired ? ', repaired what could be' : '; run with --repair to fix what can be fixed'}`);
        }
        if (problems > 0 && !r.repaired) process.exitCode = 1;
      } finally {
        await registry.close();
      }
    });
}
