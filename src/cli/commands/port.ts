// `berth port CONTAINER [PORT[/PROTO]]`: the published ports of a running container, as
// docker prints them (`8082/tcp -> 127.0.0.1:49153`, or only the host address for one port).

import type { Command } from 'commander';
import { Containers } from '../../runtime/containers.js';
import { isRunning } from '../../runtime/lifecycle.js';
import { portKey } from '../../runtime/network.js';
import { RuntimeStore } from '../../runtime/store.js';
import { berthFails, withRoot, type RootFlags } from './container.js';

export function register(program: Command): void {
  withRoot(program.command('port <container> [port]').description("list a container's published ports"))
    .action(berthFails(async (name: string, port: string | undefined, flags: RootFlags) => {
      const c = await new Containers(new RuntimeStore(flags.root)).get(name);
      const bindings = isRunning(c) ? (c.ports ?? []) : [];
      if (port === undefined) {
        for (const b of bindings) process.stdout.write(`${portKey(b)} -> ${b.hostIp}:${b.hostPort}\n`);
        return;
      }
      const key = port.includes('/') ? port : `${port}/tcp`;
      const matching = bindings.filter((b) => portKey(b) === key);
      if (matching.length === 0) throw new Error(`no public port '${key}' published for ${name}`);
      for (const b of matching) process.stdout.write(`${b.hostIp}:${b.hostPort}\n`);
    }));
}
