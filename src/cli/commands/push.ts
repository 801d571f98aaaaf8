// `berth push SOURCE DESTINATION`: an image to a registry. SOURCE is `oci:DIR[:TAG]`,
// `oci-archive:FILE[:TAG]`, `docker-archive:FILE[:NAME]` or a path (a directory is an OCI
// layout, a .tar file a `docker save` archive); DESTINATION is `[docker://]HOST/REPO[:TAG|@DIGEST]`.
// Blobs the registry has are skipped; large ones go up in resumable chunks.

import type { Command } from 'commander';
import { formatImageLocation, parseImageLocation, transfer } from '../../client/index.js';
import { clientOptions, printResult, withClientFlags, withProgress, type CommonFlags } from '../client-output.js';
import { formatBytes } from '../sizes.js';

interface PushFlags extends CommonFlags {
  sourceTag?: string;
}

export function register(program: Command): void {
  withClientFlags(
    program
      .command('push <source> <destination>')
      .description('push an image (oci:DIR[:TAG], oci-archive:FILE, docker-archive:FILE, or a path) to HOST[:PORT]/REPO[:TAG|@DIGEST]')
      .option('--source-tag <tag>', 'which image of a source holding several: a tag of its index.json, or a RepoTags entry of an archive'),
  ).action(async (sourceArg: string, destinationArg: string, flags: PushFlags) => {
    const source = parseImageLocation(sourceArg, { pathDefault: true });
    const destination = parseImageLocation(destinationArg, { defaultTag: null });
    if (destination.transport !== 'docker') {
      throw new Error(`push sends to a registry, not to ${formatImageLocation(destination)}: use berth cp for that`);
    }
    const result = await withProgress(flags, (onProgress) =>
      transfer(source, destination, { ...clientOptions(flags), sourceTag: flags.sourceTag, onProgress }),
    );
    printResult(
      flags,
      { source: sourceArg, destination: destinationArg, digest: result.digest, mediaType: result.mediaType, blobs: result.blobs, bytes: result.bytes },
      flags.quiet ? result.digest : `Pushed ${destinationArg} ${result.digest} (${result.blobs} blobs, ${formatBytes(result.bytes)})`,
    );
  });
}
