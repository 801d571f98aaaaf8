#!/usr/bin/env -S node --max-semi-space-size=4 --heap-growing-percent=100 --expose-gc
// The `berth` command. Each subcommand lives in its own module under ./commands and
// registers itself on the program; this file only assembles them and reports errors:
// `berth: MESSAGE` on stderr, or with --json `{"error": "MESSAGE"}` (scripts parse
// stdout for results and stderr for failures). The exit status is 1, or the error's
// `exitCode` when it has one.

import { Command } from 'commander';
import { registerCommands } from './commands/index.js';
import { formatError } from './errors.js';

const json = process.argv.includes('--json');

const program = new Command();
program
  .name('berth')
  .description('Berth: a self-hosted OCI image registry, its client and a small runtime')
  .version('0.1.0')
  .showHelpAfterError(!json)
  .configureOutput({
    // Commander's own errors (unknown option, missing argument) take the same form.
    outputError: (message, write) => write(json ? formatError(message.replace(/^error: /, ''), true) : message),
  });

registerCommands(program);

program.parseAsync(process.argv).catch((err: unknown) => {
  process.stderr.write(formatError(err instanceof Error ? err.message : String(err), json));
  process.exit(typeof (err as { exitCode?: unknown })?.exitCode === 'number' ? (err as { exitCode: number }).exitCode : 1);
});
