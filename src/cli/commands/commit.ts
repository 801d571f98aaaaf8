// `berth commit CONTAINER REF [--change 'CMD ["/app"]'] [-m message]`: an image from a
// container's writable layer on top of its image (docker's other way to make an image),
// into the local store. --change takes the Dockerfile instructions docker allows there.

import type { Command } from 'commander';
import { commitContainer } from '../../build/commit.js';
import { DEFAULT_ROOT, RuntimeStore } from '../../runtime/store.js';

const collect = (value: string, previous: string[]) => [...previous, value];

export function register(program: Command): void {
  program
    .command('commit <container> <ref>')
    .description("make an image of a container's changes on top of its image")
    .option('-c, --change <instruction>', 'apply a Dockerfile instruction (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, USER, VOLUME, WORKDIR, STOPSIGNAL)', collect, [])
    .option('-m, --message <text>', 'commit message (the history entry\'s comment)')
    .option('-a, --author <name>', 'author of the image')
    .option('--root <dir>', 'local image store and containers', DEFAULT_ROOT)
    .action(async (container: string, ref: string, flags: { change: string[]; message?: string; author?: string; root: string }) => {
      const { name, digest } = await commitContainer(new RuntimeStore(flags.root), container, ref, flags);
      process.stderr.write(`Committed ${name}\n`);
      process.stdout.write(`${digest}\n`);
    });
}
