// `berth build -t REF [-f Dockerfile] ... CONTEXT`: builds an image from a Dockerfile on
// the bundled runtime (as root, no daemon) into the local store (`--root`) that
// `berth images` lists and `berth run` runs; `--push` then sends it to its registry,
// `--output oci:DIR|docker-archive:FILE` writes it there instead of the store.

import type { Command } from 'commander';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { copyImage, exportDockerArchive, LayoutDestination, LayoutSource, OciLayout, parsePlatform, push } from '../../client/index.js';
import { build, BuildError, readDockerfile } from '../../build/builder.js';
import { storeImage, writeImage } from '../../build/image-store.js';
import { sourceDateEpoch } from '../../build/layer.js';
import { imageName } from '../../runtime/images.js';
import { DEFAULT_ROOT, RuntimeStore } from '../../runtime/store.js';
import { clientOptions } from '../client-output.js';

interface BuildFlags {
  tag?: string;
  file?: string;
  buildArg: string[];
  target?: string;
  platform?: string;
  cache: boolean;
  push?: boolean;
  label: string[];
  network: string;
  output?: string;
  root: string;
  insecure?: boolean;
}

const collect = (value: string, previous: string[]) => [...previous, value];

/** `K=V` pairs; `K` alone takes the value from berth's environment (as docker's --build-arg does). */
function pairs(flag: string, values: string[], fromEnv: boolean): Map<string, string> {
  const out = new Map<string, string>();
  for (const v of values) {
    const eq = v.indexOf('=');
    if (eq === 0) throw new BuildError(`${flag} ${v}: the name is empty`);
    if (eq < 0) {
      if (!fromEnv) throw new BuildError(`${flag} ${v}: expected key=value`);
      if (process.env[v] !== undefined) out.set(v, process.env[v]!);
      continue;
    }
    out.set(v.slice(0, eq), v.slice(eq + 1));
  }
  return out;
}

type Output = { type: 'oci'; dest: string } | { type: 'docker-archive'; dest: string };

function parseOutput(value: string): Output {
  const m = /^(oci|docker-archive):(.+)$/.exec(value);
  if (!m) throw new BuildError(`--output ${value}: expected oci:DIR or docker-archive:FILE`);
  return { type: m[1] as Output['type'], dest: m[2]! };
}

export function register(program: Command): void {
  program
    .command('build <context>')
    .description('build an image from a Dockerfile into the local store (as root, with the bundled runtime)')
    .option('-t, --tag <ref>', 'name of the image: HOST[:PORT]/REPO[:TAG]')
    .option('-f, --file <path>', 'the Dockerfile (default: CONTEXT/Dockerfile)')
    .option('--build-arg <k=v>', 'set a build-time variable (ARG)', collect, [])
    .option('--target <stage>', 'build this stage (by name) and what it needs, not the last one')
    .option('--platform <os/arch>', 'platform of the base images and the result (RUN needs the host\'s)')
    .option('--no-cache', 'do not use the build cache')
    .option('--push', 'push the image to its registry after building')
    .option('--label <k=v>', 'add a label to the image', collect, [])
    .option('--network <mode>', 'network for RUN: none (default) or host', 'none')
    .option('--output <dest>', 'write the image to oci:DIR or docker-archive:FILE instead of the local store')
    .option('--root <dir>', 'local image store and containers', DEFAULT_ROOT)
    .option('--insecure', 'plain HTTP for a registry that is not on loopback')
    .action(async (context: string, flags: BuildFlags) => {
      if (flags.network !== 'none' && flags.network !== 'host') throw new BuildError(`--network ${flags.network}: expected none or host`);
      if (!(await stat(context).catch(() => undefined))?.isDirectory()) throw new BuildError(`the build context ${context} is not a directory`);
      if (flags.push && !flags.tag) throw new BuildError('--push needs a name: give -t host[:port]/repo[:tag]');
      if (flags.push && flags.output) throw new BuildError('--push sends the image from the local store; --output writes it elsewhere instead: give one of them');
      const output = flags.output === undefined ? undefined : parseOutput(flags.output);
      const name = flags.tag === undefined ? undefined : imageName(flags.tag);
      const store = new RuntimeStore(flags.root);
      const started = Date.now();
      const log = (line: string) => process.stdout.write(`${line}\n`);
      const { image, steps, cached } = await build({
        store,
        context,
        dockerfile: await readDockerfile(flags.file ?? join(context, 'Dockerfile')),
        buildArgs: pairs('--build-arg', flags.buildArg, true),
        target: flags.target,
        platform: flags.platform === undefined ? undefined : parsePlatform(flags.platform),
        noCache: !flags.cache,
        labels: Object.fromEntries(pairs('--label', flags.label, false)),
        network: flags.network,
        client: clientOptions(flags),
        epoch: sourceDateEpoch(),
        log,
      });
      const seconds = ((Date.now() - started) / 1000).toFixed(2);
      if (output) {
        // The layers are in the store's layout already; config and manifest join them there, untagged.
        const layout = await OciLayout.create(store.images);
        const desc = await writeImage(layout, image.config, image.layers);
        if (output.type === 'oci') {
          const tag = name ? name.slice(name.lastIndexOf(':') + 1) : 'latest';
          await copyImage(new LayoutSource(layout), desc.digest, new LayoutDestination(await OciLayout.create(output.dest)), tag);
        } else {
          await exportDockerArchive(layout, desc.digest, output.dest, name ? [name] : []);
        }
        log(`Wrote ${output.type}:${output.dest} (${steps} steps, ${cached} cached, ${seconds}s)`);
        log(desc.digest);
        return;
      }
      const desc = await storeImage(store, image.config, image.layers, name);
      log(`COMMIT ${name ?? '(untagged)'} (${steps} steps, ${cached} cached, ${seconds}s)`);
      if (flags.push) {
        // By digest: the store names images by full reference, which the layout source would read as a digest.
        await push(store.images, flags.tag!, { ...clientOptions(flags), sourceTag: desc.digest });
        log(`Pushed ${flags.tag}`);
      }
      log(desc.digest);
    });
}
