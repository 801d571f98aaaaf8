// `berth run IMAGE [COMMAND...]`: runs an image in Linux namespaces with the bundled
// runtime. IMAGE is a registry reference (pulled into the local store, `--root`, when
// it is not there yet) or `oci:DIR[:TAG]`, an OCI image layout on disk run as it is.
// berth exits with the container's status (137 when the OOM killer ended it).

import type { Command } from 'commander';
import { parseSize } from '../../runtime/cgroups.js';
import { hasImage, imageName, pullImage } from '../../runtime/images.js';
import { runContainer } from '../../runtime/run.js';
import { DEFAULT_ROOT, RuntimeStore } from '../../runtime/store.js';
import { clientOptions, withProgress } from '../client-output.js';

interface RunFlags {
  root: string;
  rm?: boolean;
  name?: string;
  hostname?: string;
  env: string[];
  workdir?: string;
  user?: string;
  memory?: string;
  cpus?: string;
  pids?: string;
  net: string;
  volume: string[];
  interactive?: boolean;
  tty?: boolean;
  insecure?: boolean;
  quiet?: boolean;
}

const collect = (value: string, previous: string[]) => [...previous, value];

/** `oci:DIR[:TAG]` -> the layout and the tag in it (default latest). */
function parseOciImage(image: string): { layout: string; ref: string } | undefined {
  if (!image.startsWith('oci:')) return undefined;
  const rest = image.slice(4);
  const colon = rest.lastIndexOf(':');
  return colon > rest.lastIndexOf('/') ? { layout: rest.slice(0, colon), ref: rest.slice(colon + 1) } : { layout: rest, ref: 'latest' };
}

function positiveNumber(flag: string, value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${flag} ${value}: expected a positive number`);
  return n;
}

export function register(program: Command): void {
  // Options after IMAGE belong to the container's command (`berth run img sh -c ...`).
  program.enablePositionalOptions();
  program
    .command('run <image> [command...]')
    .description('run an image in Linux namespaces (pulls it into the local store first when needed)')
    .passThroughOptions()
    .option('--root <dir>', 'local image store and containers', DEFAULT_ROOT)
    .option('--rm', 'remove the container when it exits')
    .option('--name <name>', 'container name')
    .option('--hostname <name>', "container's hostname (default: its short id)")
    .option('-e, --env <K=V>', 'set an environment variable (K alone passes the host value on)', collect, [])
    .option('-w, --workdir <dir>', 'working directory inside the container')
    .option('-u, --user <uid[:gid]>', 'user (and group), numbers or names from the image')
    .option('--memory <size>', 'memory limit, e.g. 64m (the OOM killer ends the container past it)')
    .option('--cpus <n>', 'CPU limit, e.g. 0.5')
    .option('--pids <n>', 'maximum number of processes')
    .option('--net <mode>', 'none (own network namespace, loopback only) or host', 'none')
    .option('-v, --volume <host:ctr[:ro]>', 'bind-mount a host path', collect, [])
    .option('-i, --interactive', 'keep stdin attached')
    .option('-t, --tty', 'give the container a terminal')
    .option('--insecure', 'pull over plain HTTP from a registry that is not on loopback')
    .option('-q, --quiet', 'no pull or unpack progress')
    .action(async (image: string, command: string[], flags: RunFlags) => {
      if (flags.net !== 'none' && flags.net !== 'host') throw new Error(`--net ${flags.net}: expected none or host`);
      const store = new RuntimeStore(flags.root);
      const note = (line: string) => {
        if (!flags.quiet) process.stderr.write(`${line}\n`);
      };
      let source = parseOciImage(image);
      let name = image;
      if (!source) {
        name = imageName(image);
        if (!(await hasImage(store, name))) {
          note(`Pulling ${name}`);
          await withProgress({ quiet: flags.quiet }, (onProgress) => pullImage(store, name, { ...clientOptions(flags), onProgress }));
        }
        source = { layout: store.images, ref: name };
      }
      const { exitCode } = await runContainer(store, {
        ...source,
        imageName: name,
        command,
        name: flags.name,
        hostname: flags.hostname,
        env: flags.env,
        workdir: flags.workdir,
        user: flags.user,
        limits: {
          memory: flags.memory === undefined ? undefined : parseSize(flags.memory),
          cpus: flags.cpus === undefined ? undefined : positiveNumber('--cpus', flags.cpus),
          pids: flags.pids === undefined ? undefined : Math.floor(positiveNumber('--pids', flags.pids)),
        },
        net: flags.net,
        volumes: flags.volume,
        tty: flags.tty,
        interactive: flags.interactive,
        autoRemove: flags.rm,
        onUnpack: (layer) => note(`Unpacking ${layer.diffId.slice(0, 19)}`),
      });
      process.exitCode = exitCode;
    });
}
