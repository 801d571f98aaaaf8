// The OCI image layout on disk (image-spec "image-layout"): `oci-layout`, `index.json`
// and content-addressed `blobs/<alg>/<hex>`. Tags are `org.opencontainers.image.ref.name`
// annotations on index.json entries, as skopeo (`oci:dir:tag`) and umoci (`dir:tag`)
// expect. Blobs are written to `.partial/` first and renamed into place only after their
// digest and size check out, so a crash never leaves a wrong blob behind and an
// interrupted download resumes where it stopped.

import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, readFile, rename, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import { algorithmOf, hashFilePrefix, HashingStream, verifyBuffer } from './digest.js';
import type { Descriptor, ImageIndex } from './media-types.js';
import { OCI_INDEX } from './media-types.js';

export const REF_NAME = 'org.opencontainers.image.ref.name';

export class OciLayout {
  private constructor(readonly dir: string) {}

  /** Opens an existing layout; throws when `dir` is not one. */
  static async open(dir: string): Promise<OciLayout> {
    try {
      const marker = JSON.parse(await readFile(join(dir, 'oci-layout'), 'utf8')) as { imageLayoutVersion?: string };
      if (!marker.imageLayoutVersion) throw new Error('no imageLayoutVersion');
    } catch (err) {
      throw new Error(`${dir} is not an OCI image layout (${(err as Error).message})`);
    }
    return new OciLayout(dir);
  }

  /** Opens the layout at `dir`, creating an empty one when there is none. */
  static async create(dir: string): Promise<OciLayout> {
    await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
    try {
      return await OciLayout.open(dir);
    } catch {
      await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
      await writeFile(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] }));
      return new OciLayout(dir);
    }
  }

  blobPath(digest: string): string {
    const colon = digest.indexOf(':');
    const alg = algorithmOf(digest);
    const hex = digest.slice(colon + 1);
    if (!/^[a-f0-9]+$/.test(hex)) throw new Error(`invalid digest ${digest}`);
    return join(this.dir, 'blobs', alg, hex);
  }

  private partialPath(digest: string): string {
    return join(this.dir, '.partial', digest.replace(':', '-'));
  }

  async readIndex(): Promise<ImageIndex> {
    return JSON.parse(await readFile(join(this.dir, 'index.json'), 'utf8')) as ImageIndex;
  }

  private async writeIndex(index: ImageIndex): Promise<void> {
    const path = join(this.dir, 'index.json');
    await writeFile(`${path}.tmp`, JSON.stringify(index));
    await rename(`${path}.tmp`, path);
  }

  /** Tag names in index.json. */
  async tags(): Promise<string[]> {
    return (await this.readIndex()).manifests.flatMap((m) => (m.annotations?.[REF_NAME] ? [m.annotations[REF_NAME]] : []));
  }

  /**
   * The index.json entry for `tag`; without a tag, the only entry (an error when there
   * are several, naming them so the user can pick).
   */
  async resolve(tag?: string): Promise<Descriptor> {
    const { manifests } = await this.readIndex();
    if (tag) {
      const found = manifests.find((m) => m.annotations?.[REF_NAME] === tag);
      if (!found) throw new Error(`no tag ${tag} in ${this.dir} (tags: ${(await this.tags()).join(', ') || 'none'})`);
      return found;
    }
    if (manifests.length === 1) return manifests[0]!;
    if (manifests.length === 0) throw new Error(`${this.dir} holds no image`);
    throw new Error(`${this.dir} holds several images; pick one of the tags: ${(await this.tags()).join(', ')}`);
  }

  /** Points `tag` at a manifest in index.json (replacing an older entry for that tag). */
  async setTag(tag: string | undefined, desc: Descriptor): Promise<void> {
    const index = await this.readIndex();
    const entry: Descriptor = { mediaType: desc.mediaType, digest: desc.digest, size: desc.size };
    if (desc.platform) entry.platform = desc.platform;
    if (tag) entry.annotations = { [REF_NAME]: tag };
    index.manifests = index.manifests.filter((m) =>
      tag ? m.annotations?.[REF_NAME] !== tag : !(m.digest === desc.digest && !m.annotations?.[REF_NAME]),
    );
    index.manifests.push(entry);
    await this.writeIndex(index);
  }

  async hasBlob(digest: string, size?: number): Promise<boolean> {
    try {
      const s = await stat(this.blobPath(digest));
      return size === undefined || s.size === size;
    } catch {
      return false;
    }
  }

  async readBlob(digest: string): Promise<Buffer> {
    const data = await readFile(this.blobPath(digest));
    verifyBuffer(data, digest);
    return data;
  }

  openBlob(digest: string, offset = 0): Readable {
    return createReadStream(this.blobPath(digest), { start: offset });
  }

  /** Writes bytes held in memory (a manifest) after checking their digest. */
  async writeBuffer(digest: string, data: Buffer): Promise<void> {
    verifyBuffer(data, digest);
    if (await this.hasBlob(digest, data.length)) return;
    const path = this.blobPath(digest);
    await mkdir(join(path, '..'), { recursive: true });
    await writeFile(`${path}.tmp`, data);
    await rename(`${path}.tmp`, path);
  }

  /**
   * Bytes already downloaded for `desc` in `.partial/` (0 when none); a partial file
   * longer than the blob is stale and discarded.
   */
  async partialLength(desc: Descriptor): Promise<number> {
    try {
      const { size } = await stat(this.partialPath(desc.digest));
      if (size <= desc.size) return size;
      await truncate(this.partialPath(desc.digest), 0);
    } catch {
      // no partial file
    }
    return 0;
  }

  /**
   * Appends `stream` (the blob's bytes from `offset`, which must equal partialLength) to
   * the partial file; when the blob is complete, checks digest and size and renames it
   * into place. A stream that ends early leaves the partial file for the next attempt.
   */
  async appendBlob(desc: Descriptor, offset: number, stream: Readable, onBytes?: (total: number) => void): Promise<boolean> {
    const partial = this.partialPath(desc.digest);
    await mkdir(join(this.dir, '.partial'), { recursive: true });
    const algorithm = algorithmOf(desc.digest);
    const hasher = new HashingStream(algorithm, { hash: await hashFilePrefix(partial, algorithm, offset), bytes: offset });
    if (onBytes) hasher.on('data', () => onBytes(hasher.bytes));
    await pipeline(stream, hasher, createWriteStream(partial, { flags: offset > 0 ? 'a' : 'w' }));
    if (hasher.bytes < desc.size) return false;
    try {
      hasher.check(desc.digest, desc.size);
    } catch (err) {
      await rm(partial, { force: true });
      throw err;
    }
    const fh = await open(partial, 'r+');
    await fh.sync();
    await fh.close();
    await mkdir(join(this.blobPath(desc.digest), '..'), { recursive: true });
    await rename(partial, this.blobPath(desc.digest));
    return true;
  }

  /** Removes the scratch directory once a pull has finished. */
  async cleanPartials(): Promise<void> {
    await rm(join(this.dir, '.partial'), { recursive: true, force: true });
  }
}
