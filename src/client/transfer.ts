// One transfer between any two image locations (transports.ts): a registry, an OCI
// layout, an oci-archive or a docker archive. Archives are unpacked into (or packed
// from) a scratch layout, so everything is copyImage between a layout or a registry.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { copyImage, type CopyOptions, type CopyResult } from './copy.js';
import { exportDockerArchive, extractArchive, importDockerArchive } from './docker-archive.js';
import {
  LayoutDestination,
  LayoutSource,
  RegistryDestination,
  RegistrySource,
  type ImageDestination,
  type ImageSource,
  type RegistryDestinationOptions,
} from './endpoints.js';
import { OciLayout } from './layout.js';
import type { Platform } from './media-types.js';
import { packOciArchive } from './oci-archive.js';
import { parsePlatform } from './platform.js';
import { formatReference, manifestReference } from './reference.js';
import { RegistryClient, type ClientOptions } from './registry-client.js';
import { formatImageLocation, parseImageLocation, type ImageLocation } from './transports.js';

export interface TransferOptions extends ClientOptions, Omit<CopyOptions, 'platform' | 'expectDigest'> {
  /** `linux/arm64` or a Platform; default the host's (from an index). */
  platform?: string | Platform;
  upload?: RegistryDestinationOptions;
  /** Which image of a layout or archive source holding several: a tag of index.json / a RepoTags entry. */
  sourceTag?: string;
  /** The tag an OCI layout destination gives the image when the location names none. */
  tag?: string;
}

/** A client for a registry (`host[:port]`); clients cache tokens, so reuse one per registry. */
export function connect(registry: string, opts: ClientOptions = {}): RegistryClient {
  return new RegistryClient(registry, opts);
}

export interface Opened<T> {
  endpoint: T;
  /** Removes scratch directories. */
  close(): Promise<void>;
}

export interface OpenedSource extends Opened<ImageSource> {
  /** What copyImage asks the source for: a tag or digest, '' for a layout's only image. */
  reference: string;
  /** The tag the image has at the source, the default tag of the destination. */
  tag?: string;
}

const scratchDir = (purpose: string) => mkdtemp(join(tmpdir(), `berth-${purpose}-`));
const removeDir = (dir: string) => () => rm(dir, { recursive: true, force: true });

/**
 * The image of a layout to take: the tag asked for; else the only one; else the one with
 * `preferTag` (the destination's tag); else an error naming the tags and --source-tag.
 */
async function layoutReference(layout: OciLayout, loc: string, tag: string | undefined, preferTag: string | undefined): Promise<string> {
  if (tag) return tag;
  const { manifests } = await layout.readIndex();
  if (manifests.length === 1) return '';
  const tags = await layout.tags();
  if (preferTag && tags.includes(preferTag)) return preferTag;
  if (manifests.length === 0) throw new Error(`${loc} holds no image`);
  throw new Error(`${loc} holds ${manifests.length} images; pick one with --source-tag TAG or ${loc}:TAG (tags: ${tags.join(', ') || 'none'})`);
}

/**
 * Opens the image at `loc` for reading (an archive is unpacked into a scratch directory,
 * which `close` removes). `preferTag` picks among several images of a layout.
 */
export async function openSource(loc: ImageLocation, opts: TransferOptions, preferTag?: string): Promise<OpenedSource> {
  switch (loc.transport) {
    case 'docker':
      return {
        endpoint: new RegistrySource(connect(loc.ref.registry, opts), loc.ref.repository),
        reference: manifestReference(loc.ref),
        tag: loc.ref.tag,
        close: async () => undefined,
      };
    case 'oci': {
      const layout = await OciLayout.open(loc.path);
      const tag = loc.tag ?? opts.sourceTag;
      const reference = await layoutReference(layout, formatImageLocation(loc), tag, preferTag);
      return { endpoint: new LayoutSource(layout), reference, tag: reference || undefined, close: async () => undefined };
    }
    case 'oci-archive': {
      const dir = await scratchDir('oci-archive');
      try {
        await extractArchive(loc.path, dir);
        return { ...(await openSource({ transport: 'oci', path: dir, tag: loc.tag }, opts, preferTag)), close: removeDir(dir) };
      } catch (err) {
        await removeDir(dir)();
        throw err;
      }
    }
    case 'docker-archive': {
      const dir = await scratchDir('docker-archive');
      try {
        const imported = await importDockerArchive(loc.path, dir, { image: loc.name ?? opts.sourceTag });
        return { endpoint: new LayoutSource(imported.layout), reference: imported.tag, tag: imported.tag, close: removeDir(dir) };
      } catch (err) {
        await removeDir(dir)();
        throw err;
      }
    }
  }
}

interface OpenedDestination extends Opened<ImageDestination> {
  tag?: string;
  expectDigest?: string;
  /** Takes every platform of an index when the user named none (registries); one otherwise. */
  wholeIndex: boolean;
  /** Called with the result once copyImage is done (archives are written then). */
  complete?(result: CopyResult): Promise<void>;
}

async function openDestination(loc: ImageLocation, opts: TransferOptions, source: OpenedSource, from: ImageLocation): Promise<OpenedDestination> {
  const none = async () => undefined;
  switch (loc.transport) {
    case 'docker':
      return {
        endpoint: new RegistryDestination(connect(loc.ref.registry, opts), loc.ref.repository, opts.upload),
        // A destination without tag or digest takes the source's tag, as skopeo and docker do.
        tag: loc.ref.tag ?? (loc.ref.digest ? undefined : (source.tag && !source.tag.includes(':') ? source.tag : 'latest')),
        expectDigest: loc.ref.digest,
        wholeIndex: true,
        close: none,
      };
    case 'oci': {
      const layout = await OciLayout.create(loc.path);
      return { endpoint: new LayoutDestination(layout, { oci: true }), tag: loc.tag ?? opts.tag ?? source.tag, wholeIndex: false, close: none };
    }
    case 'oci-archive': {
      const dir = await scratchDir('oci-archive');
      const layout = await OciLayout.create(dir);
      return {
        endpoint: new LayoutDestination(layout, { oci: true }),
        tag: loc.tag ?? opts.tag ?? source.tag,
        wholeIndex: false,
        complete: () => packOciArchive(dir, loc.path),
        close: removeDir(dir),
      };
    }
    case 'docker-archive': {
      const dir = await scratchDir('docker-archive');
      const layout = await OciLayout.create(dir);
      const name = loc.name ?? (from.transport === 'docker' && from.ref.tag ? formatReference({ ...from.ref, digest: undefined }) : undefined);
      return {
        endpoint: new LayoutDestination(layout),
        tag: 'latest',
        wholeIndex: false,
        complete: (result) => exportDockerArchive(layout, result.digest, loc.path, name ? [name] : []),
        close: removeDir(dir),
      };
    }
  }
}

/** Copies the image at `from` to `to` (strings in skopeo's syntax, or parsed locations). */
export async function transfer(from: string | ImageLocation, to: string | ImageLocation, opts: TransferOptions = {}): Promise<CopyResult> {
  const src = typeof from === 'string' ? parseImageLocation(from) : from;
  const dst = typeof to === 'string' ? parseImageLocation(to, { defaultTag: null }) : to;
  const preferTag = dst.transport === 'docker' ? dst.ref.tag : dst.transport === 'docker-archive' ? undefined : dst.tag;
  const source = await openSource(src, opts, preferTag);
  try {
    const destination = await openDestination(dst, opts, source, src);
    try {
      const platform = typeof opts.platform === 'string' ? parsePlatform(opts.platform) : opts.platform;
      const result = await copyImage(source.endpoint, source.reference, destination.endpoint, destination.tag, {
        ...opts,
        platform,
        expectDigest: destination.expectDigest,
        allPlatforms: opts.allPlatforms ?? (destination.wholeIndex && !platform),
      });
      await destination.complete?.(result);
      return result;
    } finally {
      await destination.close();
    }
  } finally {
    await source.close();
  }
}
