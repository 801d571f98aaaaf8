// `berth kill [-s SIGNAL] CONTAINER...`: sends a signal (default SIGKILL, as docker) to
// each container's PID 1.

import type { Command } from 'commander';
import { killContainer, parseSignal } from '../../runtime/lifecycle.js';
import { RuntimeStore } from '../../runtime/store.js';
import { berthFails, findContainers, withRoot, type RootFlags } from './container.js';

export function register(program: Command): void {
  withRoot(program.command('kill <container...>').description('send a signal to running containers (default SIGKILL)'))
    .option('-s, --signal <signal>', 'signal name or number', 'KILL')
    .action(berthFails(async (names: string[], flags: RootFlags & { signal: string }) => {
      const signal = parseSignal(flags.signal);
      const store = new RuntimeStore(flags.root);
      for (const c of await findContainers(store, names)) {
        await killContainer(store, c, signal);
        process.stdout.write(`${names.find((n) => n === c.name) ?? c.id}\n`);
      }
    }));
}
