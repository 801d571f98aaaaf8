// `berth pull <ref> <dir>`: an image into an OCI layout directory (skopeo and umoci read
// it), or into a `docker save` archive when the target ends in .tar. An interrupted pull
// resumes where it stopped when run again with the same directory.

import type { Command } from 'commander';
import { pull, pullDockerArchive } from '../../client/index.js';
import { clientOptions, humanBytes, printResult, withClientFlags, withProgress, type CommonFlags } from '../client-output.js';

interface PullFlags extends CommonFlags {
  platform?: string;
  allPlatforms?: boolean;
  tag?: string;
  format?: 'oci' | 'docker-archive';
}

export function register(program: Command): void {
  withClientFlags(
    program
      .command('pull <ref> <target>')
      .description('pull host[:port]/repo[:tag|@digest] into an OCI layout directory (or a docker archive: a .tar target)')
      .option('--platform <os/arch[/variant]>', "platform to take from a multi-platform image (default: this host's)")
      .option('--all-platforms', 'keep the whole multi-platform index (OCI layout only)')
      .option('--tag <name>', "name of the image in the layout's index.json (default: the reference's tag)")
      .option('--format <format>', 'oci (a layout directory) or docker-archive; default from the target name'),
  ).action(async (ref: string, target: string, flags: PullFlags) => {
    const format = flags.format ?? (target.endsWith('.tar') ? 'docker-archive' : 'oci');
    if (format !== 'oci' && format !== 'docker-archive') throw new Error(`--format ${format}: expected oci or docker-archive`);
    const opts = { ...clientOptions(flags), platform: flags.platform, allPlatforms: flags.allPlatforms, tag: flags.tag };
    const result = await withProgress(flags, (onProgress) =>
      format === 'oci' ? pull(ref, target, { ...opts, onProgress }) : pullDockerArchive(ref, target, { ...opts, onProgress }),
    );
    printResult(
      flags,
      { ref, target, format, digest: result.digest, indexDigest: result.indexDigest, mediaType: result.mediaType, blobs: result.blobs, bytes: result.bytes },
      flags.quiet ? result.digest : `Pulled ${ref} ${result.digest} into ${target} (${result.blobs} blobs, ${humanBytes(result.bytes)})`,
    );
  });
}
