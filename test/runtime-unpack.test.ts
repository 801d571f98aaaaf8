// Unpacking layers into the runtime's store: digests checked while streaming, OCI
// whiteouts turned into overlayfs whiteouts, hostile archives refused, each layer
// unpacked once and shared. Needs root (file owners, device nodes, trusted.* xattrs).

import { execFile } from 'node:child_process';
import { lstat, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveImage } from '../src/runtime/image-layout.js';
import { RuntimeStore } from '../src/runtime/store.js';
import { UnsafeLayerError, unpackLayer } from '../src/runtime/unpack.js';
import { buildBusyboxImage, e2eTools, tempDir } from './helpers/images.js';
import { sha256, stackLayers, tarLayer } from './helpers/runtime-images.js';

function rootOrSkip(): boolean {
  if (process.getuid?.() === 0) return true;
  if (process.env.BERTH_REQUIRE_E2E === '1') throw new Error('runtime tests need root and BERTH_REQUIRE_E2E=1');
  process.stderr.write('skipping: runtime unpack tests need root (file owners, device nodes, xattrs)\n');
  return false;
}

describe.skipIf(!rootOrSkip() || !e2eTools('umoci', 'busybox'))('runtime layer unpacking', () => {
  let dir: string;
  let layout: string;
  let store: RuntimeStore;

  beforeAll(async () => {
    dir = await tempDir('berth-unpack-');
    layout = join(dir, 'layout');
    store = new RuntimeStore(join(dir, 'root'));
    await store.init();
    await buildBusyboxImage(layout, { tag: 'base', extraFiles: { 'etc/motd': 'hello\n' } });
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('unpacks a busybox image with its diff ids checked', async () => {
    const image = await resolveImage(layout, 'base');
    const layers = await store.ensureLayers(image.layers);
    expect(layers).toHaveLength(2);
    const busybox = await stat(join(layers[0]!.diff, 'bin/busybox'));
    expect(busybox.mode & 0o111).not.toBe(0);
    expect(await readFile(join(layers[1]!.diff, 'etc/motd'), 'utf8')).toBe('hello\n');
  });

  it('turns whiteouts into 0/0 devices and records opaque directories', async () => {
    const lower = await tarLayer([
      { name: 'data/', type: 'directory' },
      { name: 'data/gone', content: 'x' },
      { name: 'data/kept', content: 'y' },
      { name: 'opq/', type: 'directory' },
      { name: 'opq/old', content: 'old' },
    ]);
    const upper = await tarLayer([
      { name: 'data/', type: 'directory' },
      { name: 'data/.wh.gone' },
      { name: 'opq/', type: 'directory' },
      { name: 'opq/.wh..wh..opq' },
      { name: 'opq/new', content: 'new' },
    ]);
    await stackLayers(layout, 'base', 'whiteouts', [lower, upper]);
    const image = await resolveImage(layout, 'whiteouts');
    const layers = await store.ensureLayers(image.layers);
    const top = layers[3]!;
    const wh = await lstat(join(top.diff, 'data/gone'));
    expect(wh.isCharacterDevice() && wh.rdev === 0).toBe(true);
    await expect(lstat(join(top.diff, 'data/.wh.gone'))).rejects.toThrow();
    expect(top.whiteouts).toEqual(['data/gone']);
    expect(top.opaque).toEqual(['opq']);
    expect(await readFile(join(top.diff, 'opq/new'), 'utf8')).toBe('new');
  });

  it('keeps extended attributes of files and directories', async () => {
    const layer = await tarLayer([
      { name: 'tagged/', type: 'directory', pax: { 'SCHILY.xattr.user.dir': 'd' } },
      { name: 'tagged/file', content: 'data', mode: 0o750, pax: { 'SCHILY.xattr.user.note': 'kept' } },
    ]);
    const blob = join(dir, 'xattrs.tar');
    await writeFile(blob, layer);
    const dest = join(dir, 'xattrs');
    await mkdir(dest);
    await unpackLayer(blob, sha256(layer), dest);
    expect(await readFile(join(dest, 'tagged/file'), 'utf8')).toBe('data');
    expect((await stat(join(dest, 'tagged/file'))).mode & 0o777).toBe(0o750);
    // Node cannot read xattrs: GNU tar reads them back into PAX records.
    const { stdout } = await promisify(execFile)('tar', ['--xattrs', '--xattrs-include=*', '-cf', '-', '-C', dest, 'tagged'], { encoding: 'buffer' });
    const pax: Record<string, Record<string, string>> = {};
    const extract = tar.extract();
    const reading = (async () => {
      for await (const entry of extract) {
        pax[entry.header.name] = entry.header.pax as Record<string, string>;
        entry.resume();
      }
    })();
    extract.end(stdout);
    await reading;
    expect(pax['tagged/']?.['SCHILY.xattr.user.dir']).toBe('d');
    expect(pax['tagged/file']?.['SCHILY.xattr.user.note']).toBe('kept');
  });

  it('unpacks a layer shared by two images once', async () => {
    const seen: string[] = [];
    await buildBusyboxImage(layout, { tag: 'other', extraFiles: { 'etc/other': 'other\n' } });
    const a = await resolveImage(layout, 'base');
    const b = await resolveImage(layout, 'other');
    // umoci inserts the same busybox binary the same way, so the base layers are one diff id.
    expect(b.layers[0]!.diffId).toBe(a.layers[0]!.diffId);
    await store.ensureLayers(b.layers, (l) => seen.push(l.diffId));
    expect(seen).toEqual([b.layers[1]!.diffId]);
  });

  it('refuses a layer whose content does not match its diff id', async () => {
    const blob = join(dir, 'bad.tar.gz');
    const layer = await tarLayer([{ name: 'f', content: 'x' }]);
    await writeFile(blob, gzipSync(layer));
    const dest = join(dir, 'bad');
    await mkdir(dest);
    await expect(unpackLayer(blob, sha256('something else'), dest)).rejects.toThrow(/digest mismatch/);
  });

  it('refuses entries that leave the root, directly or through a symlink', async () => {
    const outside = join(dir, 'outside');
    await mkdir(outside);
    for (const [i, entries] of [
      [{ name: '../escape', content: 'x' }],
      [{ name: 'link', type: 'symlink', linkname: outside }, { name: 'link/escape', content: 'x' }],
      [{ name: 'link', type: 'symlink', linkname: '../../outside' }, { name: 'link/escape', content: 'x' }],
      [{ name: 'hard', type: 'link', linkname: '../../outside/x' }],
    ].entries()) {
      const layer = await tarLayer(entries as Parameters<typeof tarLayer>[0]);
      const blob = join(dir, `evil${i}.tar`);
      await writeFile(blob, layer);
      const dest = join(dir, `evil${i}`);
      await mkdir(dest);
      await expect(unpackLayer(blob, sha256(layer), dest)).rejects.toThrow(UnsafeLayerError);
    }
    await expect(lstat(join(outside, 'escape'))).rejects.toThrow();
  });
});
