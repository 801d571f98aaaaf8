// `berth prune`: removes stopped containers, unpacked layers no image or container uses,
// and blobs no image references, from the local store.

import type { Command } from 'commander';
import { pruneStore } from '../../runtime/images.js';
import { DEFAULT_ROOT, RuntimeStore } from '../../runtime/store.js';

export function register(program: Command): void {
  program
    .command('prune')
    .description('remove stopped containers and unused layers from the local store')
    .option('--root <dir>', 'local image store and containers', DEFAULT_ROOT)
    .option('--json', 'print JSON')
    .action(async (flags: { root: string; json?: boolean }) => {
      const result = await pruneStore(new RuntimeStore(flags.root));
      if (flags.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      else process.stdout.write(`Removed ${result.containers.length} containers, ${result.layers.length} layers, ${result.blobs} blobs\n`);
    });
}
