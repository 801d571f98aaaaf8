// `berth logout REGISTRY`: forgets the credentials `berth login` saved for a registry
// (docker's config.json or credential helper, or --authfile; and berth's own file).

import type { Command } from 'commander';
import { removeCredentials } from '../../client/index.js';
import { printResult, withOutputFlags, type CommonFlags } from '../client-output.js';
import { registryHost } from './login.js';

export function register(program: Command): void {
  withOutputFlags(
    program
      .command('logout <registry>')
      .description('remove the saved credentials for a registry (HOST[:PORT])')
      .option('--authfile <file>', 'remove them from this file instead of docker\'s config.json'),
  ).action(async (registryArg: string, flags: CommonFlags) => {
    const registry = registryHost(registryArg);
    const removed = await removeCredentials(registry, { authfile: flags.authfile });
    printResult(flags, { registry, removed }, flags.quiet ? '' : removed ? `Logged out of ${registry}` : `Not logged in to ${registry}`);
  });
}
