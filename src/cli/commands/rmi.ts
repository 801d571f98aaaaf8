// `berth rmi IMAGE...`: removes images from the local store (by name or id prefix).
// An image a container (running or stopped) was made from is kept unless -f, as docker
// does. Unpacked layers stay for containers that use them; `berth prune` removes the rest.

import type { Command } from 'commander';
import { removeImage } from '../../runtime/images.js';
import { DEFAULT_ROOT, RuntimeStore } from '../../runtime/store.js';
import { berthFails } from './container.js';

export function register(program: Command): void {
  program
    .command('rmi <image...>')
    .description('remove images from the local store')
    .option('--root <dir>', 'local image store and containers', DEFAULT_ROOT)
    .option('-f, --force', 'remove it even if containers were made from it')
    .action(berthFails(async (images: string[], flags: { root: string; force?: boolean }) => {
      const store = new RuntimeStore(flags.root);
      for (const image of images) process.stdout.write(`Removed ${await removeImage(store, image, { force: flags.force })}\n`);
    }));
}
