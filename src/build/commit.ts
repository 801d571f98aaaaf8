// `berth commit`: a container's changes (its overlayfs upper directory) as one more
// layer on top of the image it runs, with docker's `--change` instructions applied to
// the config and a history entry carrying the message. The result goes into the local
// store under the given name.

import { copyFile, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { OciLayout } from '../client/layout.js';
import { Containers, type ContainerState } from '../runtime/containers.js';
import { imageName } from '../runtime/images.js';
import type { RuntimeStore } from '../runtime/store.js';
import { containerLayer } from './container-layer.js';
import { DockerfileError, parseLine } from './dockerfile.js';
import { StageState } from './image-config.js';
import { readImage, storeImage, type StoredImage } from './image-store.js';
import { sourceDateEpoch } from './layer.js';
import { layerLookup } from './paths.js';

/** The instructions `docker commit --change` accepts. */
const CHANGE_KEYWORDS = ['CMD', 'ENTRYPOINT', 'ENV', 'EXPOSE', 'LABEL', 'ONBUILD', 'USER', 'VOLUME', 'WORKDIR', 'STOPSIGNAL'];

export interface CommitOptions {
  change?: string[];
  message?: string;
  author?: string;
}

/** The image the container runs, from the store or the OCI layout `berth run oci:DIR[:TAG]` used. */
async function containerImage(store: RuntimeStore, state: ContainerState): Promise<{ image: StoredImage; layout: string }> {
  const oci = /^oci:(.+?)(?::([^:/]+))?$/.exec(state.image);
  const layout = oci ? oci[1]! : store.images;
  const image = await readImage(layout, oci ? (oci[2] ?? 'latest') : state.image).catch(() => undefined);
  if (!image || image.config.rootfs.diff_ids.join() !== state.layers.join()) {
    throw new Error(`the image of container ${state.name} (${state.image}) is no longer in ${layout} as it was when the container was created`);
  }
  return { image, layout };
}

export async function commitContainer(store: RuntimeStore, idOrName: string, ref: string, opts: CommitOptions = {}): Promise<{ name: string; digest: string }> {
  await store.init();
  const name = imageName(ref);
  const containers = new Containers(store);
  const state = await containers.find(idOrName);
  if (!state) throw new Error(`no container ${idOrName} (see berth ps -a)`);
  const { image, layout: source } = await containerImage(store, state);
  const layout = await OciLayout.create(store.images);
  const from = await OciLayout.open(source);
  // The new image lives in the store: layers of an image run from elsewhere are copied in.
  for (const l of image.layers) {
    if (await layout.hasBlob(l.digest, l.size)) continue;
    await mkdir(dirname(layout.blobPath(l.digest)), { recursive: true });
    await copyFile(from.blobPath(l.digest), layout.blobPath(l.digest));
  }
  const unpacked = await store.ensureLayers(image.layers.map((l) => ({ diffId: l.diffId, digest: l.digest, size: l.size, blob: layout.blobPath(l.digest) })));
  const epoch = sourceDateEpoch();
  const layer = await containerLayer(containers.dir(state.id), state, layerLookup(unpacked), layout, epoch);

  const config = image.config;
  const stage = new StageState(config.config, new Map(), new Map(), new Set());
  for (const change of opts.change ?? []) {
    const instr = parseLine(change);
    if (!CHANGE_KEYWORDS.includes(instr.keyword)) {
      throw new DockerfileError(`--change ${instr.keyword} is not supported (allowed: ${CHANGE_KEYWORDS.join(', ')})`);
    }
    stage.apply(instr);
  }
  const created = epoch?.toISOString() ?? new Date().toISOString();
  config.config = stage.config;
  config.created = created;
  if (opts.author !== undefined) config.author = opts.author;
  config.rootfs = { type: 'layers', diff_ids: [...config.rootfs.diff_ids, layer.diffId] };
  config.history = [
    ...(config.history ?? []),
    {
      created,
      created_by: state.command.join(' '),
      ...(opts.author !== undefined ? { author: opts.author } : {}),
      ...(opts.message !== undefined ? { comment: opts.message } : {}),
    },
  ];
  const desc = await storeImage(store, config, [...image.layers, layer], name);
  return { name, digest: desc.digest };
}
