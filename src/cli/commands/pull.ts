// `berth pull REF [DESTINATION]`: without a destination, into the runtime's image store
// (what `berth images` lists and `berth run` starts), as `docker pull` does. With one,
// into `oci:DIR[:TAG]` (a layout skopeo and umoci read), `oci-archive:FILE[:TAG]`,
// `docker-archive:FILE[:NAME]`, or a path (a directory layout; a .tar docker archive).
// An interrupted pull into a layout resumes where it stopped when run again.

import type { Command } from 'commander';
import { formatImageLocation, parseImageLocation, transfer, type CopyResult } from '../../client/index.js';
import { imageName, pullImage } from '../../runtime/images.js';
import { DEFAULT_ROOT, RuntimeStore } from '../../runtime/store.js';
import { clientOptions, printResult, withClientFlags, withProgress, type CommonFlags } from '../client-output.js';
import { formatBytes } from '../sizes.js';

interface PullFlags extends CommonFlags {
  platform?: string;
  allPlatforms?: boolean;
  tag?: string;
  root: string;
}

export function register(program: Command): void {
  withClientFlags(
    program
      .command('pull <ref> [destination]')
      .description('pull [docker://]HOST/REPO[:TAG|@DIGEST] into the local image store, or into oci:DIR[:TAG], oci-archive:FILE or docker-archive:FILE')
      .option('--platform <os/arch[/variant]>', "platform to take (default: this host's); an image without it is an error")
      .option('--all-platforms', 'keep the whole multi-platform index (OCI layout only)')
      .option('--tag <name>', "name of the image in the layout's index.json (default: the reference's tag)")
      .option('--root <dir>', 'local image store, without a destination', DEFAULT_ROOT),
  ).action(async (ref: string, destinationArg: string | undefined, flags: PullFlags) => {
    const source = parseImageLocation(ref);
    const opts = { ...clientOptions(flags), platform: flags.platform, allPlatforms: flags.allPlatforms, tag: flags.tag };
    let where: string;
    let result: CopyResult;
    if (destinationArg === undefined) {
      if (source.transport !== 'docker') throw new Error(`berth pull takes a registry image; for ${ref} use berth cp`);
      where = flags.root;
      const name = imageName(ref.replace(/^docker:\/\//, ''));
      result = await withProgress(flags, (onProgress) => pullImage(new RuntimeStore(flags.root), name, { ...opts, onProgress }));
    } else {
      const destination = parseImageLocation(destinationArg, { pathDefault: true, defaultTag: null });
      if (destination.transport === 'docker') {
        throw new Error(`${destinationArg} is a registry: berth cp copies between registries; pull writes oci:DIR, oci-archive:FILE or docker-archive:FILE`);
      }
      where = formatImageLocation(destination);
      result = await withProgress(flags, (onProgress) => transfer(source, destination, { ...opts, onProgress }));
    }
    printResult(
      flags,
      { ref, destination: where, digest: result.digest, indexDigest: result.indexDigest, mediaType: result.mediaType, blobs: result.blobs, bytes: result.bytes },
      flags.quiet ? result.digest : `Pulled ${ref} ${result.digest} into ${where} (${result.blobs} blobs, ${formatBytes(result.bytes)})`,
    );
  });
}
