// `berth tags <repo>`: the tags of a repository, all pages.

import type { Command } from 'commander';
import { connect, parseReference } from '../../client/index.js';
import { clientOptions, printResult, withClientFlags, type CommonFlags } from '../client-output.js';

export function register(program: Command): void {
  withClientFlags(program.command('tags <repo>').description('list the tags of [docker://]HOST[:PORT]/REPO')).action(
    async (repo: string, flags: CommonFlags) => {
      const r = parseReference(repo, { defaultTag: null });
      const tags = await connect(r.registry, clientOptions(flags)).tags(r.repository);
      printResult(flags, { repository: r.repository, tags }, tags.join('\n'));
    },
  );
}
