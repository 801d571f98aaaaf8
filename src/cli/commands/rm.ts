// `berth rm [-f] CONTAINER...`: removes containers (a running one only with -f, which
// kills it first), as docker rm. Deleting an image on a registry is `berth delete`: a
// registry reference given here gets a one-line hint saying so.

import type { Command } from 'commander';
import { Containers } from '../../runtime/containers.js';
import { removeContainer } from '../../runtime/lifecycle.js';
import { RuntimeStore } from '../../runtime/store.js';
import { berthFails, withRoot, type RootFlags } from './container.js';

/** A registry reference names a repository path, a tag or a digest; a container name has none. */
function looksLikeImageReference(name: string): boolean {
  return /[/:@]/.test(name);
}

export function register(program: Command): void {
  withRoot(program.command('rm <container...>').description('remove containers (-f: also running ones); images on a registry: berth delete'))
    .option('-f, --force', 'kill and remove running containers')
    .action(berthFails(async (names: string[], flags: RootFlags & { force?: boolean }) => {
      const store = new RuntimeStore(flags.root);
      const containers = new Containers(store);
      const failures: string[] = [];
      for (const name of names) {
        const c = await containers.find(name);
        if (!c) {
          failures.push(looksLikeImageReference(name) ? `no such container: ${name} (to delete it on a registry: berth delete ${name})` : `no such container: ${name}`);
          continue;
        }
        try {
          await removeContainer(store, c, flags.force ?? false);
          process.stdout.write(`${name}\n`);
        } catch (err) {
          failures.push((err as Error).message);
        }
      }
      // Like docker: every container is tried, then each failure is reported.
      if (failures.length > 0) throw new Error(failures.join('\nberth: '));
    }));
}
