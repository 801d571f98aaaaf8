// `berth run IMAGE [COMMAND...]`: runs an image in Linux namespaces with the bundled
// runtime. IMAGE is a registry reference (pulled into the local store, `--root`, when
// it is not there yet), `oci:DIR[:TAG]` (an OCI image layout on disk, run as it is),
// or an `oci-archive:` / `docker-archive:` file (loaded into the store first).
// Attached, berth exits with the container's status (137 when the OOM killer ended
// it); `-d` prints the container's id and leaves it running under a monitor process.
// As in docker, berth's own failures exit 125.

import type { Command } from 'commander';
import { parseSize } from '../../runtime/cgroups.js';
import { formatImageLocation, formatReference, parseImageLocation, transfer } from '../../client/index.js';
import { hasImage, pullImage } from '../../runtime/images.js';
import { parseNetworkMode, parsePublish } from '../../runtime/network.js';
import { createContainer, startContainer, startDetached } from '../../runtime/run.js';
import { RuntimeStore } from '../../runtime/store.js';
import { requireRuntimeHost } from '../../runtime/tools.js';
import { clientOptions, withProgress } from '../client-output.js';
import { berthFails, withRoot, type RootFlags } from './container.js';

interface RunFlags extends RootFlags {
  detach?: boolean;
  rm?: boolean;
  name?: string;
  hostname?: string;
  env: string[];
  entrypoint?: string;
  workdir?: string;
  user?: string;
  label: string[];
  memory?: string;
  memorySwap?: string;
  cpus?: string;
  cpuShares?: string;
  cpusetCpus?: string;
  pids?: string;
  net?: string;
  network?: string;
  publish: string[];
  publishAll?: boolean;
  dns: string[];
  addHost: string[];
  volume: string[];
  interactive?: boolean;
  tty?: boolean;
  insecure?: boolean;
  quiet?: boolean;
}

export const collect = (value: string, previous: string[]) => [...previous, value];

/**
 * Where the image to run is, in skopeo's syntax (the client's transports): a registry
 * reference is pulled into the store when missing, a layout is run as it is, an archive
 * is copied into the store first (under its location as name). Returns the layout and
 * the name in it.
 */
async function locateImage(store: RuntimeStore, image: string, flags: RunFlags, note: (line: string) => void): Promise<{ layout: string; ref: string; name: string }> {
  const loc = parseImageLocation(image);
  if (loc.transport === 'oci') return { layout: loc.path, ref: loc.tag ?? 'latest', name: image };
  const name = loc.transport === 'docker' ? formatReference(loc.ref) : formatImageLocation(loc);
  if (!(await hasImage(store, name))) {
    note(`${loc.transport === 'docker' ? 'Pulling' : 'Loading'} ${name}`);
    await withProgress({ quiet: flags.quiet }, (onProgress) =>
      loc.transport === 'docker'
        ? pullImage(store, name, { ...clientOptions(flags), onProgress })
        : store.withLock(() => transfer(loc, { transport: 'oci', path: store.images, tag: name }, { onProgress })),
    );
  }
  return { layout: store.images, ref: name, name };
}

function positiveNumber(flag: string, value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${flag} ${value}: expected a positive number`);
  return n;
}

function cpuShares(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 2 || n > 262144) throw new Error(`--cpu-shares ${value}: expected an integer from 2 to 262144 (1024 is the default weight)`);
  return n;
}

function labels(entries: string[]): Record<string, string> {
  return Object.fromEntries(entries.map((e) => (e.includes('=') ? [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)] : [e, ''])));
}

export function register(program: Command): void {
  // Options after IMAGE belong to the container's command (`berth run img sh -c ...`).
  program.enablePositionalOptions();
  withRoot(
    program
      .command('run <image> [command...]')
      .description('run an image in Linux namespaces (pulls it into the local store first when needed)')
      .passThroughOptions(),
  )
    .option('-d, --detach', 'run in the background and print the container id')
    .option('--rm', 'remove the container when it exits')
    .option('--name <name>', 'container name')
    .option('--hostname <name>', "container's hostname (default: its short id)")
    .option('-e, --env <K=V>', 'set an environment variable (K alone passes the host value on)', collect, [])
    .option('--entrypoint <cmd>', "replace the image's entrypoint")
    .option('-w, --workdir <dir>', 'working directory inside the container')
    .option('-u, --user <uid[:gid]>', 'user (and group), numbers or names from the image')
    .option('-l, --label <K=V>', 'set a label', collect, [])
    .option('-m, --memory <size>', 'memory limit, e.g. 64m (the OOM killer ends the container past it)')
    .option('--memory-swap <size>', 'memory plus swap limit (-1: unlimited swap; default: no swap)')
    .option('--cpus <n>', 'CPU limit, e.g. 0.5')
    .option('-c, --cpu-shares <n>', 'relative CPU weight (default 1024)')
    .option('--cpuset-cpus <list>', 'CPUs to run on, e.g. 0-1 or 0,2')
    .option('--pids <n>', 'maximum number of processes')
    .option('--pids-limit <n>', 'same as --pids (docker\'s name)')
    .option('--net <mode>', 'bridge (default: own namespace with outbound access through slirp4netns), none or host')
    .option('--network <mode>', 'same as --net')
    .option('-p, --publish <[ip:][hostPort:]port[/proto]>', 'publish a container port on the host', collect, [])
    .option('-P, --publish-all', 'publish every EXPOSEd port on a free host port')
    .option('--dns <ip>', 'DNS server for the container', collect, [])
    .option('--add-host <name:ip>', 'add a line to /etc/hosts', collect, [])
    .option('-v, --volume <host:ctr[:ro]>', 'bind-mount a host path', collect, [])
    .option('-i, --interactive', 'keep stdin attached')
    .option('-t, --tty', 'give the container a terminal')
    .option('--insecure', 'pull over plain HTTP from a registry that is not on loopback')
    .option('-q, --quiet', 'no pull or unpack progress')
    .action(berthFails(async (image: string, command: string[], flags: RunFlags & { pidsLimit?: string }) => {
      // Before anything is pulled: can this host run containers at all?
      requireRuntimeHost();
      const net = parseNetworkMode(flags.network ?? flags.net ?? 'bridge');
      const ports = flags.publish.map(parsePublish);
      const pids = flags.pids ?? flags.pidsLimit;
      const limits = {
        memory: flags.memory === undefined ? undefined : parseSize(flags.memory),
        memorySwap: flags.memorySwap === undefined ? undefined : flags.memorySwap === '-1' ? -1 : parseSize(flags.memorySwap),
        cpus: flags.cpus === undefined ? undefined : positiveNumber('--cpus', flags.cpus),
        cpuShares: flags.cpuShares === undefined ? undefined : cpuShares(flags.cpuShares),
        cpusetCpus: flags.cpusetCpus,
        pids: pids === undefined ? undefined : Math.floor(positiveNumber('--pids', pids)),
      };
      if (limits.cpusetCpus !== undefined && !/^\d+(-\d+)?(,\d+(-\d+)?)*$/.test(limits.cpusetCpus)) throw new Error(`--cpuset-cpus ${limits.cpusetCpus}: expected a list like 0-1 or 0,2`);
      const store = new RuntimeStore(flags.root);
      const note = (line: string) => {
        if (!flags.quiet) process.stderr.write(`${line}\n`);
      };
      await store.init();
      const source = await locateImage(store, image, flags, note);
      const state = await createContainer(store, {
        layout: source.layout,
        ref: source.ref,
        imageName: source.name,
        command,
        entrypoint: flags.entrypoint === undefined ? undefined : flags.entrypoint === '' ? [] : [flags.entrypoint],
        name: flags.name,
        hostname: flags.hostname,
        env: flags.env,
        workdir: flags.workdir,
        user: flags.user,
        labels: labels(flags.label),
        limits,
        net,
        ports,
        publishAll: flags.publishAll,
        dns: flags.dns,
        addHosts: flags.addHost,
        volumes: flags.volume,
        tty: flags.tty,
        interactive: flags.interactive,
        detached: flags.detach,
        autoRemove: flags.rm,
        onUnpack: (layer) => note(`Unpacking ${layer.diffId.slice(0, 19)}`),
      });
      if (flags.detach) {
        const monitor = [process.execPath, ...process.execArgv, process.argv[1]!, 'container', 'monitor', '--root', flags.root, state.id];
        await startDetached(store, state, monitor);
        process.stdout.write(`${state.id}\n`);
        return;
      }
      const { exitCode } = await startContainer(store, state);
      process.exitCode = exitCode;
    }));
}
