// `berth logout <registry>`: forgets the credentials berth saved for a registry.

import type { Command } from 'commander';
import { removeCredentials } from '../../client/index.js';
import { printResult, type CommonFlags } from '../client-output.js';
import { registryHost } from './login.js';

export function register(program: Command): void {
  program
    .command('logout <registry>')
    .description("remove the saved credentials for a registry (docker's config.json is left alone)")
    .option('-q, --quiet', 'print nothing')
    .option('--json', 'print the result as JSON')
    .action(async (registryArg: string, flags: CommonFlags) => {
      const registry = registryHost(registryArg);
      const removed = await removeCredentials(registry);
      printResult(flags, { registry, removed }, flags.quiet ? '' : removed ? `Logged out of ${registry}` : `Not logged in to ${registry}`);
    });
}
