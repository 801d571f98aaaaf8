// `berth delete REF`: deletes a tag (repo:tag) or a manifest and its tags (repo@digest)
// on a registry; skopeo's and crane's name for it (`berth rm` is for containers).

import type { Command } from 'commander';
import { remove } from '../../client/index.js';
import { clientOptions, printResult, withClientFlags, type CommonFlags } from '../client-output.js';

export function register(program: Command): void {
  withClientFlags(
    program
      .command('delete <ref>')
      .description('delete a tag ([docker://]HOST/REPO:TAG) or a manifest and every tag on it (HOST/REPO@DIGEST) on a registry'),
  ).action(async (ref: string, flags: CommonFlags) => {
    await remove(ref, clientOptions(flags));
    printResult(flags, { ref, deleted: true }, flags.quiet ? '' : `Deleted ${ref}`);
  });
}
