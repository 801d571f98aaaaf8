// Images in and out of the runtime's local store (an OCI layout, `<root>/images`): the
// base image a FROM names (pulled through the client when missing), and the image a
// build or commit makes (config and manifest written beside the layers, then tagged,
// which is what `berth images` lists and `berth run` runs).

import { digestOf } from '../client/digest.js';
import { OciLayout } from '../client/layout.js';
import { DOCKER_LAYER_GZIP, OCI_CONFIG, OCI_MANIFEST, type Descriptor, type ImageManifest } from '../client/media-types.js';
import { formatPlatform, type ClientOptions, type Platform } from '../client/index.js';
import { resolveImage } from '../runtime/image-layout.js';
import { hasImage, imageName, pullImage } from '../runtime/images.js';
import type { RuntimeStore } from '../runtime/store.js';
import type { ImageConfigFile } from './image-config.js';
import { OCI_LAYER_GZIP, type LayerBlob } from './layer.js';

const OCI_LAYER_TAR = 'application/vnd.oci.image.layer.v1.tar';
const DOCKER_LAYER_TAR = 'application/vnd.docker.image.rootfs.diff.tar';

export interface StoredImage {
  /** The manifest digest (the image id). */
  digest: string;
  config: ImageConfigFile;
  layers: LayerBlob[];
}

/** Docker's layer media types have OCI equivalents of the same bytes; an OCI manifest needs those. */
function ociLayerType(mediaType: string): string {
  if (mediaType === DOCKER_LAYER_GZIP) return OCI_LAYER_GZIP;
  if (mediaType === DOCKER_LAYER_TAR) return OCI_LAYER_TAR;
  return mediaType;
}

/** Reads the image `ref` of a layout: its config, and its layers with their diff ids. */
export async function readImage(layoutDir: string, ref: string): Promise<StoredImage> {
  const image = await resolveImage(layoutDir, ref);
  const layout = await OciLayout.open(layoutDir);
  const manifest = JSON.parse((await layout.readBlob(image.manifestDigest)).toString('utf8')) as ImageManifest;
  const config = structuredClone(image.config) as unknown as ImageConfigFile;
  config.config ??= {};
  return {
    digest: image.manifestDigest,
    config,
    layers: image.layers.map((l, i) => ({ diffId: l.diffId, digest: l.digest, size: l.size, mediaType: ociLayerType(manifest.layers[i]!.mediaType) })),
  };
}

/** The base image `ref` from the store, pulled first when the store does not have it. */
export async function baseImage(store: RuntimeStore, ref: string, opts: ClientOptions & { platform?: Platform }, log: (line: string) => void): Promise<StoredImage> {
  const name = imageName(ref);
  if (!(await hasImage(store, name))) {
    log(`Pulling ${name}`);
    await pullImage(store, name, opts);
  }
  const image = await readImage(store.images, name);
  const { os, architecture } = image.config;
  if (opts.platform && (os !== opts.platform.os || architecture !== opts.platform.architecture)) {
    throw new Error(`the local store has ${name} for ${os}/${architecture}, not ${formatPlatform(opts.platform)} (berth rmi it to pull that platform)`);
  }
  return image;
}

/** Writes config and manifest into `layout` (the layers are there already); returns the manifest's descriptor. */
export async function writeImage(layout: OciLayout, config: ImageConfigFile, layers: LayerBlob[]): Promise<Descriptor> {
  const configRaw = Buffer.from(JSON.stringify(config));
  const configDesc = { mediaType: OCI_CONFIG, digest: digestOf(configRaw), size: configRaw.length };
  await layout.writeBuffer(configDesc.digest, configRaw);
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: configDesc,
    layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
  };
  const raw = Buffer.from(JSON.stringify(manifest));
  const desc = { mediaType: OCI_MANIFEST, digest: digestOf(raw), size: raw.length };
  await layout.writeBuffer(desc.digest, raw);
  return desc;
}

/** Stores the image in the local store under `name` (a full reference), or untagged without one. */
export async function storeImage(store: RuntimeStore, config: ImageConfigFile, layers: LayerBlob[], name?: string): Promise<Descriptor> {
  await store.init();
  const layout = await OciLayout.create(store.images);
  const desc = await writeImage(layout, config, layers);
  await store.withLock(() => layout.setTag(name, desc));
  return desc;
}
