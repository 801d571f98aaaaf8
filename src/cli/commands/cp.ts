// `berth cp <from> <to>`: registry to registry. On one registry, blobs are mounted
// instead of uploaded; a multi-platform index is copied whole unless --platform is given.

import type { Command } from 'commander';
import { copy } from '../../client/index.js';
import { clientOptions, humanBytes, printResult, withClientFlags, withProgress, type CommonFlags } from '../client-output.js';

interface CpFlags extends CommonFlags {
  platform?: string;
}

export function register(program: Command): void {
  withClientFlags(
    program
      .command('cp <from> <to>')
      .description('copy an image between registries or repositories (host[:port]/repo[:tag] to host[:port]/repo[:tag])')
      .option('--platform <os/arch[/variant]>', 'copy only this platform of a multi-platform image'),
  ).action(async (from: string, to: string, flags: CpFlags) => {
    const result = await withProgress(flags, (onProgress) => copy(from, to, { ...clientOptions(flags), platform: flags.platform, onProgress }));
    printResult(
      flags,
      { from, to, digest: result.digest, mediaType: result.mediaType, blobs: result.blobs, bytes: result.bytes },
      flags.quiet ? result.digest : `Copied ${from} to ${to} ${result.digest} (${result.blobs} blobs, ${humanBytes(result.bytes)})`,
    );
  });
}
