// Hand-made layers for the runtime tests: umoci writes ordinary layers, but tests of
// whiteouts, opaque directories and hostile archives need exact tar entries, so these
// helpers write tar layers with tar-stream and stack them on an image in an OCI layout.

import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { REF_NAME } from '../../src/runtime/image-layout.js';
import type { ImageIndex } from '../../src/client/media-types.js';
import { readLayoutBlob, type ImageManifest } from './images.js';

export interface TarEntry {
  name: string;
  type?: 'file' | 'directory' | 'symlink' | 'link' | 'character-device' | 'fifo';
  content?: string;
  linkname?: string;
  mode?: number;
  /** PAX records, e.g. `SCHILY.xattr.user.note` for an extended attribute. */
  pax?: Record<string, string>;
}

/** A tar archive of `entries`, in order (the uncompressed form, whose sha256 is the diff id). */
export async function tarLayer(entries: TarEntry[]): Promise<Buffer> {
  const pack = tar.pack();
  for (const e of entries) {
    const type = e.type ?? 'file';
    const mode = e.mode ?? (type === 'directory' ? 0o755 : 0o644);
    if (type === 'file') pack.entry({ name: e.name, mode, pax: e.pax }, e.content ?? '');
    else pack.entry({ name: e.name, type, mode, linkname: e.linkname, pax: e.pax });
  }
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(Buffer.from(c as Uint8Array));
  return Buffer.concat(chunks);
}

export function sha256(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

async function putBlob(layout: string, data: Buffer): Promise<string> {
  const digest = sha256(data);
  await writeFile(join(layout, 'blobs', 'sha256', digest.slice(7)), data);
  return digest;
}

/**
 * Tags `tag` in `layout` as the image `baseTag` plus `layers` (uncompressed tars, stored
 * gzipped) on top, with `extra` (Cmd, ExposedPorts...) set in its config. Returns the
 * new manifest digest.
 */
export async function stackLayers(layout: string, baseTag: string, tag: string, layers: Buffer[], extra: Record<string, unknown> = {}): Promise<string> {
  const indexPath = join(layout, 'index.json');
  const index = JSON.parse(await readFile(indexPath, 'utf8')) as ImageIndex;
  const base = index.manifests.find((m) => m.annotations?.[REF_NAME] === baseTag);
  if (!base) throw new Error(`no ${baseTag} in ${layout}`);
  const manifest = JSON.parse((await readLayoutBlob(layout, base.digest)).toString()) as ImageManifest;
  const config = JSON.parse((await readLayoutBlob(layout, manifest.config.digest)).toString()) as {
    rootfs: { diff_ids: string[] };
    config?: Record<string, unknown>;
  };
  config.config = { ...config.config, ...extra };
  for (const layer of layers) {
    const gz = gzipSync(layer);
    manifest.layers.push({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: await putBlob(layout, gz), size: gz.length });
    config.rootfs.diff_ids.push(sha256(layer));
  }
  const configRaw = Buffer.from(JSON.stringify(config));
  manifest.config = { ...manifest.config, digest: await putBlob(layout, configRaw), size: configRaw.length };
  const raw = Buffer.from(JSON.stringify(manifest));
  const digest = await putBlob(layout, raw);
  index.manifests = index.manifests.filter((m) => m.annotations?.[REF_NAME] !== tag);
  index.manifests.push({ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest, size: raw.length, annotations: { [REF_NAME]: tag } });
  await writeFile(indexPath, JSON.stringify(index));
  return digest;
}
