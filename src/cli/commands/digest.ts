// `berth digest <ref>`: the digest a reference resolves to (the index's for a multi-platform tag).

import type { Command } from 'commander';
import { resolveDigest } from '../../client/index.js';
import { clientOptions, printResult, withClientFlags, type CommonFlags } from '../client-output.js';

export function register(program: Command): void {
  withClientFlags(program.command('digest <ref>').description('print the digest of [docker://]HOST[:PORT]/REPO:TAG')).action(
    async (ref: string, flags: CommonFlags) => {
      const desc = await resolveDigest(ref, clientOptions(flags));
      printResult(flags, { ref, digest: desc.digest, mediaType: desc.mediaType, size: desc.size }, desc.digest);
    },
  );
}
