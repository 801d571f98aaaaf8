// `docker save` archives: a tar holding manifest.json ([{Config, RepoTags, Layers}]),
// the image config and one tar per layer (uncompressed in classic archives; newer docker
// saves an OCI layout inside the tar, which manifest.json describes just the same).
//
// Reading converts an archive into an OCI layout (Docker schema 2 manifest, gzip layers,
// the config unchanged so its diff_ids still hold), from which push works as usual.
// Writing goes the other way from a layout. Both stream every layer through temporary
// files; nothing larger than a config or manifest is held in memory.

import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, open, readFile, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, normalize } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';
import tar from 'tar-stream';
import { digestFile, digestOf, HashingStream } from './digest.js';
import { OciLayout } from './layout.js';
import {
  DOCKER_CONFIG,
  DOCKER_LAYER_GZIP,
  DOCKER_MANIFEST,
  isIndexType,
  type Descriptor,
  type ImageManifest,
} from './media-types.js';

interface ArchiveManifestEntry {
  Config: string;
  RepoTags?: string[] | null;
  Layers: string[];
}

export interface ImportedArchive {
  layout: OciLayout;
  /** The tag the image has in the layout (the one picked from RepoTags, or `latest`). */
  tag: string;
  digest: string;
  repoTags: string[];
}

async function isGzip(path: string): Promise<boolean> {
  const fh = await open(path, 'r');
  try {
    const { buffer, bytesRead } = await fh.read(Buffer.alloc(2), 0, 2, 0);
    return bytesRead === 2 && buffer[0] === 0x1f && buffer[1] === 0x8b;
  } finally {
    await fh.close();
  }
}

/** Unpacks a tar's regular files under `dir` (names checked: nothing escapes `dir`); also used for oci-archive. */
export async function extractArchive(archive: string, dir: string): Promise<void> {
  const extract = tar.extract();
  const done = pipeline(createReadStream(archive), extract);
  for await (const entry of extract) {
    const name = normalize(entry.header.name).replace(/^\/+/, '');
    if (entry.header.type !== 'file' || name.startsWith('..')) {
      entry.resume();
      continue;
    }
    const target = join(dir, name);
    await mkdir(dirname(target), { recursive: true });
    await pipeline(entry, createWriteStream(target));
  }
  await done;
}

/**
 * Converts a `docker save` archive into an OCI layout at `layoutDir`. `image` picks one
 * image by a RepoTags entry (`name:tag`) when the archive holds several.
 */
export async function importDockerArchive(archive: string, layoutDir: string, opts: { image?: string } = {}): Promise<ImportedArchive> {
  const scratch = await mkdtemp(join(tmpdir(), 'berth-archive-'));
  try {
    await extractArchive(archive, scratch);
    let entries: ArchiveManifestEntry[];
    try {
      entries = JSON.parse(await readFile(join(scratch, 'manifest.json'), 'utf8')) as ArchiveManifestEntry[];
    } catch {
      throw new Error(`${archive} is not a docker archive (no manifest.json)`);
    }
    const entry = pickArchiveImage(entries, opts.image, archive);
    const layout = await OciLayout.create(layoutDir);

    const config = await readFile(join(scratch, normalize(entry.Config)));
    const configDesc: Descriptor = { mediaType: DOCKER_CONFIG, digest: digestOf(config), size: config.length };
    await layout.writeBuffer(configDesc.digest, config);

    const layers: Descriptor[] = [];
    for (const name of entry.Layers) {
      const path = join(scratch, normalize(name));
      if (await isGzip(path)) {
        const { digest, size } = await digestFile(path);
        await mkdir(dirname(layout.blobPath(digest)), { recursive: true });
        await rename(path, layout.blobPath(digest));
        layers.push({ mediaType: DOCKER_LAYER_GZIP, digest, size });
        continue;
      }
      // Registries expect compressed layers; the config's diff_ids name the uncompressed tar, which stays the same.
      const gz = `${path}.gz`;
      const hasher = new HashingStream('sha256');
      await pipeline(createReadStream(path), createGzip(), hasher, createWriteStream(gz));
      const digest = `sha256:${hasher.hash.digest('hex')}`;
      await mkdir(dirname(layout.blobPath(digest)), { recursive: true });
      await rename(gz, layout.blobPath(digest));
      layers.push({ mediaType: DOCKER_LAYER_GZIP, digest, size: hasher.bytes });
    }

    const manifest: ImageManifest = { schemaVersion: 2, mediaType: DOCKER_MANIFEST, config: configDesc, layers };
    const raw = Buffer.from(JSON.stringify(manifest, null, 3));
    const digest = digestOf(raw);
    await layout.writeBuffer(digest, raw);
    const repoTags = entry.RepoTags ?? [];
    const picked = opts.image ?? repoTags[0];
    const tag = picked?.includes(':') ? picked.slice(picked.lastIndexOf(':') + 1) : 'latest';
    await layout.setTag(tag, { mediaType: DOCKER_MANIFEST, digest, size: raw.length });
    return { layout, tag, digest, repoTags };
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

function pickArchiveImage(entries: ArchiveManifestEntry[], image: string | undefined, archive: string): ArchiveManifestEntry {
  if (image) {
    const found = entries.find((e) => e.RepoTags?.some((t) => t === image || t.endsWith(`/${image}`)));
    if (!found) throw new Error(`no image ${image} in ${archive} (it has: ${entries.flatMap((e) => e.RepoTags ?? []).join(', ')})`);
    return found;
  }
  if (entries.length !== 1) {
    throw new Error(`${archive} holds ${entries.length} images; pick one of: ${entries.flatMap((e) => e.RepoTags ?? []).join(', ')}`);
  }
  return entries[0]!;
}

/**
 * Writes the image `digest` of `layout` as a `docker save` archive at `file`, tagged
 * `repoTags` (e.g. `registry:5000/app:1.0`). Layers are stored uncompressed, as
 * `docker load` and skopeo expect, and checked against the config's diff_ids.
 */
export async function exportDockerArchive(layout: OciLayout, digest: string, file: string, repoTags: string[]): Promise<void> {
  const manifest = JSON.parse((await layout.readBlob(digest)).toString('utf8')) as ImageManifest;
  if (isIndexType(manifest.mediaType) || !manifest.config) {
    throw new Error(`${digest} is an index; a docker archive holds one platform's image (pick one with --platform)`);
  }
  const config = await layout.readBlob(manifest.config.digest);
  const diffIds = (JSON.parse(config.toString('utf8')) as { rootfs?: { diff_ids?: string[] } }).rootfs?.diff_ids ?? [];
  const scratch = await mkdtemp(join(tmpdir(), 'berth-archive-'));
  try {
    const pack = tar.pack();
    const written = pipeline(pack, createWriteStream(file));
    const addFile = async (name: string, path: string, size: number) => {
      await pipeline(createReadStream(path), pack.entry({ name, size, mode: 0o644, mtime: new Date(0) }));
    };
    const configName = `${manifest.config.digest.slice(manifest.config.digest.indexOf(':') + 1)}.json`;
    pack.entry({ name: configName, mode: 0o644, mtime: new Date(0) }, config);
    const layerNames: string[] = [];
    for (const [i, layer] of manifest.layers.entries()) {
      const tarPath = join(scratch, `layer-${i}.tar`);
      const hasher = new HashingStream('sha256');
      const compressed = layer.mediaType.includes('gzip');
      const blob = layout.openBlob(layer.digest);
      if (compressed) await pipeline(blob, createGunzip(), hasher, createWriteStream(tarPath));
      else await pipeline(blob, hasher, createWriteStream(tarPath));
      const diffId = `sha256:${hasher.hash.digest('hex')}`;
      if (diffIds[i] && diffIds[i] !== diffId) throw new Error(`layer ${layer.digest} unpacks to ${diffId}, config says ${diffIds[i]}`);
      const name = `${diffId.slice('sha256:'.length)}/layer.tar`;
      await addFile(name, tarPath, hasher.bytes);
      layerNames.push(name);
      await rm(tarPath);
    }
    const archiveManifest: ArchiveManifestEntry[] = [{ Config: configName, RepoTags: repoTags, Layers: layerNames }];
    pack.entry({ name: 'manifest.json', mode: 0o644, mtime: new Date(0) }, JSON.stringify(archiveManifest));
    pack.finalize();
    await written;
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

