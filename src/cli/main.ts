#!/usr/bin/env -S node --max-semi-space-size=4 --heap-growing-percent=100 --expose-gc
// The `berth` command. Each subcommand lives in its own module under ./commands and
// registers itself on the program; this file only assembles them and reports errors.

import { Command } from 'commander';
import { registerCommands } from './commands/index.js';

const program = new Command();
program
  .name('berth')
  .description('Berth: a self-hosted OCI image registry, its client and a small runtime')
  .version('0.1.0')
  .showHelpAfterError();

registerCommands(program);

program.parseAsync(process.argv).catch((err: unknown) => {
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`berth: ${message}\n`);
  process.exit(typeof (err as { exitCode?: unknown })?.exitCode === 'number' ? (err as { exitCode: number }).exitCode : 1);
});
