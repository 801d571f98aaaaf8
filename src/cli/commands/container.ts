// `berth container ...`: the container commands under docker's group name
// (`container prune`, `container ls/ps`, `container rm`, ...), the hidden monitor that
// waits for a detached container, and what the container commands share: the store
// option, docker's exit code 125 for berth's own failures, and finding containers.

import type { Command } from 'commander';
import { Containers, type ContainerState } from '../../runtime/containers.js';
import { dockerInspect } from '../../runtime/inspect.js';
import { startContainer } from '../../runtime/run.js';
import { DEFAULT_ROOT, RuntimeStore } from '../../runtime/store.js';
import { renderTemplate } from '../go-template.js';

export interface RootFlags {
  root: string;
}

/**
 * Adds `--root` (the local store) to a container command, and docker's exit code 125
 * for a command line it cannot parse (commander has printed why).
 */
export function withRoot(cmd: Command): Command {
  return cmd
    .option('--root <dir>', 'local image store and containers', DEFAULT_ROOT)
    .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 125));
}

/**
 * Wraps a container command's action so that berth's own failures exit 125, as docker's
 * do, keeping 126, 127 and the container's status for the container.
 */
export function berthFails<A extends unknown[]>(action: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await action(...args);
    } catch (err) {
      if (err instanceof Error && (err as { exitCode?: number }).exitCode === undefined) Object.assign(err, { exitCode: 125 });
      throw err;
    }
  };
}

/** Each named container, in order; fails naming every one that does not exist. */
export async function findContainers(store: RuntimeStore, names: string[]): Promise<ContainerState[]> {
  const containers = new Containers(store);
  const out: ContainerState[] = [];
  const missing: string[] = [];
  for (const n of names) {
    const c = await containers.find(n);
    if (c) out.push(c);
    else missing.push(n);
  }
  if (missing.length > 0) throw new Error(`no such container: ${missing.join(', ')}`);
  return out;
}

/** Prints containers as `docker inspect` does (a JSON array), or each through `--format`. */
export function printInspect(containers: ContainerState[], format: string | undefined): void {
  const views = containers.map(dockerInspect);
  if (format === undefined) process.stdout.write(`${JSON.stringify(views, null, 4)}\n`);
  else for (const v of views) process.stdout.write(`${renderTemplate(format, v)}\n`);
}

/**
 * For `berth inspect NAME`: when NAME is a container of the local store, prints it and
 * returns true; otherwise returns false and the image inspect goes on.
 */
export async function inspectContainerIfAny(name: string, flags: { root?: string; format?: string }): Promise<boolean> {
  const c = await new Containers(new RuntimeStore(flags.root ?? DEFAULT_ROOT)).find(name).catch(() => undefined);
  if (!c) return false;
  printInspect([c], flags.format);
  return true;
}

export function register(program: Command): void {
  const container = program.command('container').description('manage containers (docker container ...)');

  withRoot(container.command('prune').description('remove every stopped container and release what any left on the host'))
    .option('--json', 'print JSON')
    .action(berthFails(async (flags: RootFlags & { json?: boolean }) => {
      const store = new RuntimeStore(flags.root);
      const containers = new Containers(store);
      // Listing releases what containers whose berth was killed left behind.
      const removed: string[] = [];
      await store.withLock(async () => {
        for (const c of await containers.list()) {
          if (c.status !== 'exited') continue;
          await containers.remove(c.id);
          removed.push(c.id);
        }
      });
      if (flags.json) process.stdout.write(`${JSON.stringify({ containers: removed }, null, 2)}\n`);
      else process.stdout.write(`${removed.length > 0 ? `Deleted Containers:\n${removed.join('\n')}\n\n` : ''}Total: ${removed.length} containers\n`);
    }));

  // The process that waits for a detached container (`run -d`): started by run in a
  // session of its own, with container.log as its output.
  withRoot(container.command('monitor <id>', { hidden: true })).action(async (id: string, flags: RootFlags) => {
    const store = new RuntimeStore(flags.root);
    const state = await new Containers(store).read(id);
    if (!state) throw new Error(`no such container: ${id}`);
    const { exitCode } = await startContainer(store, state, { stdio: ['ignore', 'inherit', 'inherit'] });
    process.exitCode = exitCode;
  });
}
