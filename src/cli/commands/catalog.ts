// `berth catalog <registry>`: the repositories of a registry, all pages.

import type { Command } from 'commander';
import { connect } from '../../client/index.js';
import { clientOptions, printResult, withClientFlags, type CommonFlags } from '../client-output.js';
import { registryHost } from './login.js';

export function register(program: Command): void {
  withClientFlags(program.command('catalog <registry>').description('list the repositories of a registry (HOST[:PORT])')).action(
    async (registry: string, flags: CommonFlags) => {
      const repositories = await connect(registryHost(registry), clientOptions(flags)).catalog();
      printResult(flags, { repositories }, repositories.join('\n'));
    },
  );
}
