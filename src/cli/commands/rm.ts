// `berth rm <ref>`: deletes a tag (repo:tag) or a manifest (repo@digest).

import type { Command } from 'commander';
import { remove } from '../../client/index.js';
import { clientOptions, printResult, withClientFlags, type CommonFlags } from '../client-output.js';

export function register(program: Command): void {
  withClientFlags(
    program.command('rm <ref>').description('delete a tag (host[:port]/repo:tag) or a manifest and its tags (host[:port]/repo@digest)'),
  ).action(async (ref: string, flags: CommonFlags) => {
    await remove(ref, clientOptions(flags));
    printResult(flags, { ref, deleted: true }, flags.quiet ? '' : `Deleted ${ref}`);
  });
}
