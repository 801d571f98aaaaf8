// `berth referrers <ref>`: manifests whose subject is the given one (signatures, SBOMs...).

import type { Command } from 'commander';
import { connect, formatReference, parseReference } from '../../client/index.js';
import { clientOptions, printResult, withClientFlags, type CommonFlags } from '../client-output.js';
import { formatBytes } from '../sizes.js';

interface ReferrersFlags extends CommonFlags {
  artifactType?: string;
}

export function register(program: Command): void {
  withClientFlags(
    program
      .command('referrers <ref>')
      .description('list the artifacts that refer to HOST[:PORT]/REPO[:TAG|@DIGEST]')
      .option('--artifact-type <type>', 'only artifacts of this type'),
  ).action(async (ref: string, flags: ReferrersFlags) => {
    const r = parseReference(ref);
    const client = connect(r.registry, clientOptions(flags));
    const digest = r.digest ?? (await client.headManifest(r.repository, r.tag!))?.digest;
    if (!digest) throw new Error(`${formatReference(r)}: manifest unknown`);
    const list = await client.referrers(r.repository, digest, flags.artifactType);
    printResult(
      flags,
      { subject: digest, manifests: list },
      list.map((d) => `${d.digest}  ${d.artifactType ?? d.mediaType}  ${formatBytes(d.size)}`).join('\n'),
    );
  });
}
