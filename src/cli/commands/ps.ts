// `berth ps`: the containers of the local store, running and (with -a) stopped.

import type { Command } from 'commander';
import { Containers } from '../../runtime/containers.js';
import { DEFAULT_ROOT, RuntimeStore } from '../../runtime/store.js';
import { printTable } from './images.js';

export function register(program: Command): void {
  program
    .command('ps')
    .description('list containers (running ones; -a for all)')
    .option('--root <dir>', 'local image store and containers', DEFAULT_ROOT)
    .option('-a, --all', 'include stopped containers')
    .option('--json', 'print JSON')
    .action(async (flags: { root: string; all?: boolean; json?: boolean }) => {
      const all = await new Containers(new RuntimeStore(flags.root)).list();
      const shown = flags.all ? all : all.filter((c) => c.status === 'running');
      if (flags.json) {
        process.stdout.write(`${JSON.stringify(shown, null, 2)}\n`);
        return;
      }
      printTable(
        ['CONTAINER ID', 'IMAGE', 'COMMAND', 'CREATED', 'STATUS', 'NAME'],
        shown.map((c) => [
          c.id.slice(0, 12),
          c.image,
          JSON.stringify(c.command.join(' ').slice(0, 30)),
          c.created.replace('T', ' ').slice(0, 19),
          c.status === 'exited' ? `exited (${c.exitCode ?? '?'})${c.oomKilled ? ' OOM' : ''}` : c.status,
          c.name,
        ]),
      );
    });
}
