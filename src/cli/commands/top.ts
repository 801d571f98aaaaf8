// `berth top CONTAINER [ps OPTIONS]`: the container's processes, as docker top shows
// them: the host's `ps` (default `-ef`) narrowed to the processes of the container's
// PID namespace.

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { Command } from 'commander';
import { Containers } from '../../runtime/containers.js';
import { containerPids } from '../../runtime/lifecycle.js';
import { RuntimeStore } from '../../runtime/store.js';
import { hostTool } from '../../runtime/tools.js';
import { berthFails, withRoot, type RootFlags } from './container.js';

export function register(program: Command): void {
  program.enablePositionalOptions();
  withRoot(program.command('top <container> [ps-options...]').description("show a container's processes").passThroughOptions())
    .action(berthFails(async (name: string, psOptions: string[], flags: RootFlags) => {
      const c = await new Containers(new RuntimeStore(flags.root)).get(name);
      const pids = new Set(await containerPids(c));
      const { stdout } = await promisify(execFile)(hostTool('ps'), psOptions.length > 0 ? psOptions : ['-ef'], { maxBuffer: 16 << 20 });
      const [header = '', ...lines] = stdout.split('\n').filter(Boolean);
      const column = header.trim().split(/\s+/).indexOf('PID');
      if (column < 0) throw new Error('the ps options must include the PID column');
      process.stdout.write(`${header}\n`);
      for (const line of lines) if (pids.has(Number(line.trim().split(/\s+/)[column]))) process.stdout.write(`${line}\n`);
    }));
}
