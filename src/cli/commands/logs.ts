// `berth logs [-f] CONTAINER`: a detached container's output, kept in its container.log
// (stdout and stderr in the order written). -f follows it until the container ends.

import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { watch } from 'node:fs';
import type { Command } from 'commander';
import { Containers } from '../../runtime/containers.js';
import { isRunning } from '../../runtime/lifecycle.js';
import { RuntimeStore } from '../../runtime/store.js';
import { berthFails, withRoot, type RootFlags } from './container.js';

/** How often -f looks again when the file system sends no change event. */
const FOLLOW_POLL_MS = 500;

/** Copies bytes [from, end of file) to stdout; returns the new offset. */
async function copyFrom(file: string, from: number): Promise<number> {
  const size = (await stat(file)).size;
  if (size <= from) return from;
  await new Promise<void>((resolve, reject) => {
    const s = createReadStream(file, { start: from, end: size - 1 });
    s.on('error', reject);
    s.on('end', resolve);
    s.pipe(process.stdout, { end: false });
  });
  return size;
}

export function register(program: Command): void {
  withRoot(program.command('logs <container>').description("print a detached container's output"))
    .option('-f, --follow', 'keep printing new output until the container stops')
    .action(berthFails(async (name: string, flags: RootFlags & { follow?: boolean }) => {
      const containers = new Containers(new RuntimeStore(flags.root));
      const c = await containers.get(name);
      if (!c.config?.detached) throw new Error(`${name} ran attached: its output went to the terminal of berth run (logs are kept for run -d)`);
      const file = containers.logFile(c.id);
      let offset = await copyFrom(file, 0);
      if (!flags.follow) return;
      const watcher = watch(file);
      try {
        for (;;) {
          const now = await containers.find(c.id);
          const running = now !== undefined && isRunning(now);
          offset = await copyFrom(file, offset);
          if (!running) return;
          await new Promise((resolve) => {
            const timer = setTimeout(resolve, FOLLOW_POLL_MS);
            watcher.once('change', () => {
              clearTimeout(timer);
              resolve(undefined);
            });
          });
        }
      } finally {
        watcher.close();
      }
    }));
}
