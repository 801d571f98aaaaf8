// `berth stop [-t SECONDS] CONTAINER...`: SIGTERM to each container's PID 1, SIGKILL
// after the timeout (default 10 s, as docker), then waits until it is recorded as exited.

import type { Command } from 'commander';
import { stopContainer } from '../../runtime/lifecycle.js';
import { RuntimeStore } from '../../runtime/store.js';
import { berthFails, findContainers, withRoot, type RootFlags } from './container.js';

export function register(program: Command): void {
  withRoot(program.command('stop <container...>').description('stop containers: SIGTERM, then SIGKILL after the timeout'))
    .option('-t, --time <seconds>', 'seconds to wait before SIGKILL', '10')
    .action(berthFails(async (names: string[], flags: RootFlags & { time: string }) => {
      const seconds = Number(flags.time);
      if (!Number.isFinite(seconds) || seconds < 0) throw new Error(`-t ${flags.time}: expected a number of seconds`);
      const store = new RuntimeStore(flags.root);
      for (const c of await findContainers(store, names)) {
        await stopContainer(store, c, seconds);
        process.stdout.write(`${names.find((n) => n === c.name) ?? c.id}\n`);
      }
    }));
}
