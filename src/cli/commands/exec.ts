// `berth exec [-it] CONTAINER COMMAND...`: runs a command in a running container, in
// its namespaces and cgroup, with its environment and user (or -e, -u, -w). berth exits
// with the command's status: 126 when it cannot be run, 127 when it is not found, 125
// when berth itself fails.

import type { Command } from 'commander';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Containers } from '../../runtime/containers.js';
import { execInContainer } from '../../runtime/lifecycle.js';
import { RuntimeStore } from '../../runtime/store.js';
import { resolveUser } from '../../runtime/user.js';
import { berthFails, withRoot, type RootFlags } from './container.js';
import { collect } from './run.js';

interface ExecFlags extends RootFlags {
  interactive?: boolean;
  tty?: boolean;
  env: string[];
  user?: string;
  workdir?: string;
}

export function register(program: Command): void {
  program.enablePositionalOptions();
  withRoot(program.command('exec <container> <command...>').description('run a command in a running container').passThroughOptions())
    .option('-i, --interactive', 'keep stdin attached')
    .option('-t, --tty', 'give the command a terminal')
    .option('-e, --env <K=V>', 'set an environment variable', collect, [])
    .option('-u, --user <uid[:gid]>', 'user (and group), numbers or names from the container')
    .option('-w, --workdir <dir>', 'working directory inside the container')
    .action(berthFails(async (name: string, command: string[], flags: ExecFlags) => {
      const c = await new Containers(new RuntimeStore(flags.root)).get(name);
      // Names are looked up in the container's own files, as it sees them now.
      const user = flags.user === undefined || !c.pid
        ? undefined
        : await resolveUser(flags.user, (p) => readFile(join(`/proc/${c.pid}/root`, p), 'utf8').catch(() => undefined));
      process.exitCode = await execInContainer(c, command, {
        env: flags.env,
        workdir: flags.workdir,
        uid: user?.uid,
        gid: user?.gid,
        tty: flags.tty,
        interactive: flags.interactive,
      });
    }));
}
