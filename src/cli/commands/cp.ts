// `berth cp SOURCE DESTINATION`: an image from anywhere to anywhere, in skopeo's syntax
// (`docker://` by default, `oci:`, `oci-archive:`, `docker-archive:`). On one registry,
// blobs are mounted instead of uploaded; a multi-platform index goes to a registry whole
// unless --platform is given.

import type { Command } from 'commander';
import { parseImageLocation, transfer } from '../../client/index.js';
import { clientOptions, printResult, withClientFlags, withProgress, type CommonFlags } from '../client-output.js';
import { formatBytes } from '../sizes.js';

interface CpFlags extends CommonFlags {
  platform?: string;
  allPlatforms?: boolean;
  sourceTag?: string;
}

export function register(program: Command): void {
  withClientFlags(
    program
      .command('cp <source> <destination>')
      .description('copy an image: [docker://]HOST/REPO[:TAG], oci:DIR[:TAG], oci-archive:FILE[:TAG] or docker-archive:FILE[:NAME] on either side')
      .option('--platform <os/arch[/variant]>', 'copy only this platform of a multi-platform image')
      .option('--all-platforms', 'copy a whole multi-platform index, also into a layout')
      .option('--source-tag <tag>', 'which image of a source holding several'),
  ).action(async (from: string, to: string, flags: CpFlags) => {
    const result = await withProgress(flags, (onProgress) =>
      transfer(parseImageLocation(from), parseImageLocation(to, { defaultTag: null }), {
        ...clientOptions(flags),
        platform: flags.platform,
        allPlatforms: flags.allPlatforms,
        sourceTag: flags.sourceTag,
        onProgress,
      }),
    );
    printResult(
      flags,
      { source: from, destination: to, digest: result.digest, mediaType: result.mediaType, blobs: result.blobs, bytes: result.bytes },
      flags.quiet ? result.digest : `Copied ${from} to ${to} ${result.digest} (${result.blobs} blobs, ${formatBytes(result.bytes)})`,
    );
  });
}
