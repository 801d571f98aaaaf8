// The builder: runs a parsed Dockerfile's stages on the bundled runtime, as root, with
// no daemon. Each stage starts from an image of the local store (pulled when missing),
// another stage, or scratch; then, step by step:
//
// - metadata instructions change the config (image-config.ts) and add a history entry
//   marked empty_layer;
// - RUN starts a container (src/runtime) on the layers so far with the stage's config
//   (env, user, workdir) and no network unless --network host, and its upper directory
//   becomes a layer;
// - COPY/ADD fill a staging directory that becomes a layer; WORKDIR makes a layer
//   only when the directory is missing.
//
// Every step has a cache key (cache.ts); a hit reuses the layer and its time, so a
// fully cached rebuild gives the same image digest. Layers are written straight into the
// store's layout, where the final image is tagged.

import type { StdioOptions } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { OciLayout } from '../client/layout.js';
import { formatPlatform, hostPlatform, parsePlatform, type ClientOptions, type Platform } from '../client/index.js';
import { Containers } from '../runtime/containers.js';
import { mergeLayers } from '../runtime/rootfs.js';
import { runContainer } from '../runtime/run.js';
import { processAlive, type RuntimeStore, type UnpackedLayer } from '../runtime/store.js';
import { BuildCache, stepKey, type CacheEntry } from './cache.js';
import { containerLayer } from './container-layer.js';
import { applyCopy, cleanup, planCopy, stageDirectory } from './copy.js';
import { DockerfileError, parseDockerfile, parseLine, type Dockerfile, type Instruction, type Stage } from './dockerfile.js';
import { StageState, type HistoryEntry, type ImageConfigFile } from './image-config.js';
import { baseImage, writeImage, type StoredImage } from './image-store.js';
import { EMPTY_LAYER_DIFF_ID, type LayerBlob, writeLayer } from './layer.js';
import { layerLookup, resolveInRoot, type Lookup } from './paths.js';
import { expandWord } from './shell-words.js';
import { SourceTree } from './sources.js';

export interface BuildOptions {
  store: RuntimeStore;
  /** The context directory. */
  context: string;
  /** The Dockerfile's text. */
  dockerfile: string;
  buildArgs?: Map<string, string>;
  target?: string;
  platform?: Platform;
  noCache?: boolean;
  labels?: Record<string, string>;
  network?: 'none' | 'host';
  /** For pulling base images. */
  client?: ClientOptions;
  /** SOURCE_DATE_EPOCH: every time in the image, and file times clamped to it. */
  epoch?: Date;
  /** Progress lines (STEP, CACHED, COMMIT...). */
  log?: (line: string) => void;
  /** Where RUN's output goes (default: berth's stdout and stderr). */
  stdio?: StdioOptions;
}

export interface BuildResult {
  image: StoredImage;
  steps: number;
  cached: number;
}

export class BuildError extends Error {}

/** A stage's image while it is built: config, layers, and the cache key of its last step. */
interface ImageState extends StoredImage {
  key: string;
}

export async function build(opts: BuildOptions): Promise<BuildResult> {
  const builder = new Builder(opts, parseDockerfile(opts.dockerfile));
  await opts.store.init();
  const builds = join(opts.store.root, 'build');
  // A build that was killed (Ctrl-C outside a RUN) left its scratch directory; its pid is in the name.
  for (const name of await readdir(builds).catch(() => [] as string[])) {
    const pid = Number(/^tmp-\d+-(\d+)$/.exec(name)?.[1]);
    if (pid && !processAlive(pid)) await rm(join(builds, name), { recursive: true, force: true });
  }
  const scratch = join(builds, `tmp-${Date.now()}-${process.pid}`);
  await mkdir(scratch, { recursive: true });
  try {
    return await builder.run(scratch);
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

class Builder {
  private readonly log: (line: string) => void;
  private readonly cache: BuildCache;
  private readonly buildArgs: Map<string, string>;
  private readonly consumed = new Set<string>();
  private readonly metaArgs = new Map<string, string | undefined>();
  private readonly built = new Map<number, Promise<ImageState>>();
  private readonly trees = new Map<string, Promise<SourceTree>>();
  private readonly platform: Platform;
  private scratch = '';
  private context?: SourceTree;
  private steps = 0;
  private cached = 0;

  constructor(
    private readonly opts: BuildOptions,
    private readonly df: Dockerfile,
  ) {
    this.log = opts.log ?? (() => undefined);
    this.cache = new BuildCache(opts.store.root);
    this.buildArgs = opts.buildArgs ?? new Map();
    this.platform = opts.platform ?? hostPlatform();
  }

  private get layout(): Promise<OciLayout> {
    return OciLayout.create(this.opts.store.images);
  }

  async run(scratch: string): Promise<BuildResult> {
    this.scratch = scratch;
    this.context = await SourceTree.context(this.opts.context);
    // Global ARGs: --build-arg, else the default (which may use the ARGs before it).
    for (const instr of this.df.metaArgs) {
      for (const { name, value } of instr.args) {
        if (this.buildArgs.has(name)) {
          this.metaArgs.set(name, this.buildArgs.get(name));
          this.consumed.add(name);
        } else {
          this.metaArgs.set(name, value === undefined ? undefined : this.expandMeta(value, instr.line));
        }
      }
    }
    const target = this.opts.target === undefined ? this.df.stages[this.df.stages.length - 1]! : this.stageNamed(this.opts.target);
    if (!target) throw new BuildError(`target stage ${this.opts.target} could not be found`);
    const result = await this.stage(target);
    const unused = [...this.buildArgs.keys()].filter((k) => !this.consumed.has(k));
    if (unused.length > 0) this.log(`[Warning] One or more build-args [${unused.join(' ')}] were not consumed`);
    const config = result.config;
    if (this.opts.labels && Object.keys(this.opts.labels).length > 0) config.config.Labels = { ...config.config.Labels, ...this.opts.labels };
    const last = config.history?.[config.history.length - 1];
    config.created = this.opts.epoch?.toISOString() ?? last?.created ?? new Date().toISOString();
    return { image: result, steps: this.steps, cached: this.cached };
  }

  private expandMeta(word: string, line: number): string {
    const env = new Map([...this.metaArgs].filter((e): e is [string, string] => e[1] !== undefined));
    try {
      return expandWord(word, env, this.df.directives.escape);
    } catch (err) {
      throw new DockerfileError((err as Error).message, line);
    }
  }

  private stageNamed(name: string): Stage | undefined {
    const lower = name.toLowerCase();
    const byName = this.df.stages.find((s) => s.name === lower);
    if (byName) return byName;
    return /^\d+$/.test(name) ? this.df.stages[Number(name)] : undefined;
  }

  private stage(stage: Stage): Promise<ImageState> {
    let building = this.built.get(stage.index);
    if (!building) {
      building = this.buildStage(stage);
      this.built.set(stage.index, building);
    }
    return building;
  }

  private async buildStage(stage: Stage): Promise<ImageState> {
    const prefix = this.df.stages.length > 1 ? `[${stage.index + 1}/${this.df.stages.length}] ` : '';
    const total = stage.instructions.length + 1;
    this.log(`${prefix}STEP 1/${total}: ${stage.from.original}`);
    let image = await this.from(stage);
    const state = new StageState(image.config.config, this.buildArgs, this.metaArgs, this.consumed, this.df.directives.escape);
    // A base image's ONBUILD triggers run first, and are not passed on.
    const triggers = (image.config.config.OnBuild ?? []).map((t) => parseLine(t, this.df.directives.escape));
    image.config.config.OnBuild = null;
    const steps = [...triggers.map((t) => ({ instr: t, label: `ONBUILD ${t.original}` })), ...stage.instructions.map((instr, i) => ({ instr, label: `STEP ${i + 2}/${total}: ${instr.original}` }))];
    for (const { instr, label } of steps) {
      this.log(`${prefix}${label}`);
      this.steps++;
      image = await this.step(image, state, instr);
    }
    if (state.author !== undefined) image.config.author = state.author;
    return image;
  }

  private async from(stage: Stage): Promise<ImageState> {
    const name = this.expandMeta(stage.from.image, stage.from.line);
    const flag = stage.from.flags.platform;
    const platform = flag ? parsePlatformOrFail(this.expandMeta(flag, stage.from.line), stage.from.line) : this.platform;
    if (name.toLowerCase() === 'scratch') {
      return {
        key: stepKey('scratch', formatPlatform(platform)),
        digest: '',
        layers: [],
        config: {
          architecture: platform.architecture,
          os: platform.os,
          ...(platform.variant ? { variant: platform.variant } : {}),
          config: {},
          rootfs: { type: 'layers', diff_ids: [] },
          history: [],
        },
      };
    }
    const earlier = this.df.stages.find((s) => s.index < stage.index && s.name === name.toLowerCase());
    if (earlier) return structuredClone(await this.stage(earlier));
    const base = await baseImage(this.opts.store, name, { ...this.opts.client, platform }, this.log);
    return { ...base, key: stepKey('image', base.digest) };
  }

  /** The layers of the image so far, unpacked in the store, and a view of its files. */
  private async unpacked(image: ImageState): Promise<{ layers: UnpackedLayer[]; lookup: Lookup }> {
    const layout = await this.layout;
    const layers = await this.opts.store.ensureLayers(
      image.layers.map((l) => ({ diffId: l.diffId, digest: l.digest, size: l.size, blob: layout.blobPath(l.digest) })),
    );
    return { layers, lookup: layerLookup(layers) };
  }

  /**
   * One step through the cache: on a hit the cached layer (if any) and time are reused;
   * otherwise `make` runs and its result is cached.
   */
  private async cachedStep(
    image: ImageState,
    state: StageState,
    instr: Instruction,
    inputs: string[],
    createdBy: string,
    make?: () => Promise<LayerBlob | undefined>,
  ): Promise<ImageState> {
    const key = stepKey(image.key, instr.original, JSON.stringify(image.config.config), JSON.stringify([...state.args]), ...inputs);
    let entry: CacheEntry | undefined = this.opts.noCache ? undefined : await this.cache.get(key);
    if (entry?.layer && !(await (await this.layout).hasBlob(entry.layer.digest, entry.layer.size))) entry = undefined;
    if (entry) {
      this.cached++;
      this.log('--> CACHED');
    } else {
      // A step that changed nothing adds no layer (as BuildKit does): the history says empty_layer.
      const made = make ? await make() : undefined;
      const layer = made?.diffId === EMPTY_LAYER_DIFF_ID ? undefined : made;
      entry = { created: this.opts.epoch?.toISOString() ?? new Date().toISOString(), ...(layer ? { layer } : {}) };
      await this.cache.put(key, entry);
      if (layer) this.log(`--> ${layer.diffId.slice(7, 19)}`);
    }
    const history: HistoryEntry = { created: entry.created, created_by: createdBy };
    if (state.author !== undefined) history.author = state.author;
    if (!entry.layer) history.empty_layer = true;
    const config: ImageConfigFile = {
      ...image.config,
      config: state.config,
      rootfs: { type: 'layers', diff_ids: [...image.config.rootfs.diff_ids, ...(entry.layer ? [entry.layer.diffId] : [])] },
      history: [...(image.config.history ?? []), history],
    };
    return { key, digest: '', config, layers: entry.layer ? [...image.layers, entry.layer] : image.layers };
  }

  private async step(image: ImageState, state: StageState, instr: Instruction): Promise<ImageState> {
    switch (instr.keyword) {
      case 'RUN':
        return this.runStep(image, state, instr);
      case 'COPY':
      case 'ADD':
        return this.copyStep(image, state, instr);
      case 'WORKDIR': {
        state.config = { ...state.config };
        state.apply(instr);
        const workdir = state.config.WorkingDir!;
        const { lookup } = await this.unpacked(image);
        const existing = await lookup(await resolveInRoot(workdir, lookup, true));
        const createdBy = `/bin/sh -c #(nop) WORKDIR ${workdir}`;
        if (existing?.st.isDirectory()) return this.cachedStep(image, state, instr, [], createdBy);
        return this.cachedStep(image, state, instr, ['mkdir'], createdBy, () => this.mkdirLayer(workdir, lookup));
      }
      case 'FROM':
        throw new DockerfileError('FROM inside a stage', instr.line);
      default:
        state.config = structuredClone(state.config);
        state.apply(instr);
        return this.cachedStep(image, state, instr, [], `/bin/sh -c #(nop) ${instr.original}`);
    }
  }

  private async mkdirLayer(workdir: string, lookup: Lookup): Promise<LayerBlob> {
    const staging = await mkdtemp(join(this.scratch, 'workdir-'));
    try {
      await stageDirectory(staging, await resolveInRoot(workdir, lookup, true), lookup);
      return await writeLayer(staging, await this.layout, this.opts.epoch);
    } finally {
      await rm(staging, { recursive: true, force: true });
    }
  }

  private async runStep(image: ImageState, state: StageState, instr: Instruction & { keyword: 'RUN' }): Promise<ImageState> {
    const argv = state.argv(instr.command);
    const args = state.runArgs();
    // docker's history form: the build args in effect, then the command
    const createdBy = args.length > 0 ? `|${args.length} ${args.join(' ')} ${argv.join(' ')}` : argv.join(' ');
    const network = this.opts.network ?? 'none';
    return this.cachedStep(image, state, instr, [JSON.stringify(argv), JSON.stringify(args), network], createdBy, async () => {
      const host = hostPlatform();
      if (this.platform.os !== host.os || this.platform.architecture !== host.architecture) {
        throw new DockerfileError(`RUN cannot run ${formatPlatform(this.platform)} programs on this ${formatPlatform(host)} host`, instr.line);
      }
      const { lookup } = await this.unpacked(image);
      // The runtime runs images from a layout: this step's image, without ENTRYPOINT (RUN ignores it).
      const layout = await OciLayout.create(join(this.scratch, 'layout'));
      const config = { ...image.config, config: { ...state.config, Entrypoint: null, Cmd: null } };
      await layout.setTag('step', await writeImage(layout, config, image.layers));
      const { exitCode, container } = await runContainer(this.opts.store, {
        layout: layout.dir,
        ref: 'step',
        imageName: 'berth-build',
        command: argv,
        env: args,
        net: network,
        stdio: this.opts.stdio,
        autoRemove: false,
      });
      const containers = new Containers(this.opts.store);
      try {
        if (exitCode !== 0) throw new BuildError(`Dockerfile line ${instr.line}: ${instr.original}: the command returned a non-zero code: ${exitCode}`);
        return await containerLayer(containers.dir(container.id), container, lookup, await this.layout, this.opts.epoch);
      } finally {
        await containers.remove(container.id);
      }
    });
  }

  /** Where COPY --from reads: an earlier stage (by name or index) or an image. */
  private fromTree(name: string): Promise<SourceTree> {
    let tree = this.trees.get(name);
    if (!tree) {
      tree = (async () => {
        const stage = this.stageNamed(name);
        const image = stage ? await this.stage(stage) : await baseImage(this.opts.store, name, { ...this.opts.client, platform: this.platform }, this.log);
        const { layers } = await this.unpacked({ ...image, key: '' });
        const dir = await mkdtemp(join(this.scratch, 'from-'));
        await mergeLayers(layers, dir);
        return new SourceTree(dir, [], stage ? `stage ${name}` : `image ${name}`);
      })();
      this.trees.set(name, tree);
    }
    return tree;
  }

  private async copyStep(image: ImageState, state: StageState, instr: Instruction & { keyword: 'COPY' | 'ADD' }): Promise<ImageState> {
    const x = (w: string) => state.expand(w, instr.line);
    const from = instr.flags.from === undefined ? undefined : x(instr.flags.from);
    const tree = from === undefined ? this.context! : await this.fromTree(from);
    const { lookup } = await this.unpacked(image);
    const plan = await planCopy({
      keyword: instr.keyword,
      line: instr.line,
      sources: instr.sources.map(x),
      dest: x(instr.dest),
      workdir: state.config.WorkingDir ?? '/',
      chown: instr.flags.chown === undefined ? undefined : x(instr.flags.chown),
      chmod: instr.flags.chmod === undefined ? undefined : x(instr.flags.chmod),
      tree,
      image: lookup,
      scratch: this.scratch,
    });
    try {
      const inputs = [plan.inputHash, plan.dest, String(plan.destIsDir), JSON.stringify(plan.owner ?? null), String(plan.chmod ?? '')];
      const createdBy = `/bin/sh -c #(nop) ${instr.keyword} ${instr.keyword === 'ADD' ? 'file' : 'multi'}:${plan.inputHash} in /${plan.dest} `;
      return await this.cachedStep(image, state, instr, inputs, createdBy, async () => {
        const staging = await mkdtemp(join(this.scratch, 'copy-'));
        try {
          await applyCopy(plan, staging, lookup);
          return await writeLayer(staging, await this.layout, this.opts.epoch);
        } finally {
          await rm(staging, { recursive: true, force: true });
        }
      });
    } finally {
      await cleanup(plan);
    }
  }
}

function parsePlatformOrFail(value: string, line: number): Platform {
  try {
    return parsePlatform(value);
  } catch (err) {
    throw new DockerfileError((err as Error).message, line);
  }
}

/** Reads a Dockerfile, with docker's message when it is missing. */
export async function readDockerfile(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new BuildError(`cannot read the Dockerfile: ${path} does not exist`);
    throw err;
  }
}
