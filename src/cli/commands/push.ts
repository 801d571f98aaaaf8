// `berth push <dir|archive> <ref>`: an OCI layout directory or a `docker save` archive
// to a registry. Blobs the registry has are skipped; large ones go up in resumable chunks.

import type { Command } from 'commander';
import { pushPath } from '../../client/index.js';
import { clientOptions, humanBytes, printResult, withClientFlags, withProgress, type CommonFlags } from '../client-output.js';

interface PushFlags extends CommonFlags {
  sourceTag?: string;
}

export function register(program: Command): void {
  withClientFlags(
    program
      .command('push <source> <ref>')
      .description('push an OCI layout directory or a docker archive (docker save) to host[:port]/repo[:tag]')
      .option('--source-tag <tag>', 'which image of the source: a tag in its index.json, or a RepoTags entry of the archive'),
  ).action(async (source: string, ref: string, flags: PushFlags) => {
    const result = await withProgress(flags, (onProgress) =>
      pushPath(source, ref, { ...clientOptions(flags), sourceTag: flags.sourceTag, onProgress }),
    );
    printResult(
      flags,
      { ref, digest: result.digest, mediaType: result.mediaType, blobs: result.blobs, bytes: result.bytes },
      flags.quiet ? result.digest : `Pushed ${ref} ${result.digest} (${result.blobs} blobs, ${humanBytes(result.bytes)})`,
    );
  });
}
