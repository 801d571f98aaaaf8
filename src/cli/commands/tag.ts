// `berth tag <ref> <newtag>`: another tag for the same manifest, in the same repository.
// Only the manifest is fetched and put again; no blob moves.

import type { Command } from 'commander';
import { parseReference, tag } from '../../client/index.js';
import { clientOptions, printResult, withClientFlags, type CommonFlags } from '../client-output.js';

export function register(program: Command): void {
  withClientFlags(program.command('tag <ref> <newtag>').description('tag the manifest of HOST[:PORT]/REPO[:TAG|@DIGEST] as NEWTAG in the same repository')).action(
    async (ref: string, newTag: string, flags: CommonFlags) => {
      const digest = await tag(ref, newTag, clientOptions(flags));
      const r = parseReference(ref);
      const target = `${r.registry}/${r.repository}:${newTag}`;
      printResult(flags, { ref, tag: target, digest }, flags.quiet ? digest : `Tagged ${target} ${digest}`);
    },
  );
}
