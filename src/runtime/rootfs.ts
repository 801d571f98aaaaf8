// A container's root filesystem, from its image's unpacked layers. With overlayfs the
// layers are stacked read-only under the container's own upper directory (the mount is
// made inside the container's mount namespace, so it goes away with the container).
// Where overlayfs is missing, the layers are copied, bottom to top, into one directory,
// applying whiteouts and opaque directories as the copy goes.

import { spawn } from 'node:child_process';
import { chmod, copyFile, lchown, lstat, mkdir, readFile, readdir, readlink, rm, symlink, utimes, lutimes, link } from 'node:fs/promises';
import { join } from 'node:path';
import type { RootfsMode } from './containers.js';
import type { UnpackedLayer } from './store.js';
import { overlaySupported } from './tools.js';

/** `BERTH_ROOTFS=copy` forces the copy mode (hosts whose overlayfs is unusable, tests). */
export function rootfsMode(): RootfsMode {
  const forced = process.env.BERTH_ROOTFS;
  if (forced === 'copy' || forced === 'overlay') return forced;
  return overlaySupported() ? 'overlay' : 'copy';
}

function isWhiteout(st: { isCharacterDevice(): boolean; rdev: number }): boolean {
  return st.isCharacterDevice() && st.rdev === 0;
}

/**
 * Copies `layers` (bottom first) into `target`, as overlayfs would show them. No path in
 * `target` is followed through a symlink: every directory on the way is created or
 * checked here, and anything in the way of a layer's entry is removed first.
 */
export async function mergeLayers(layers: UnpackedLayer[], target: string): Promise<void> {
  await mkdir(target, { recursive: true });
  for (const layer of layers) {
    for (const dir of layer.opaque) {
      // An opaque directory hides everything the lower layers put in it.
      const at = dir === '' ? target : join(target, dir);
      const st = await lstat(at).catch(() => undefined);
      if (st?.isDirectory()) for (const name of await readdir(at)) await rm(join(at, name), { recursive: true, force: true });
    }
    await copyTree(layer.diff, target, new Map());
  }
}

async function copyTree(src: string, dst: string, links: Map<number, string>): Promise<void> {
  for (const name of await readdir(src)) {
    const from = join(src, name);
    const to = join(dst, name);
    const st = await lstat(from);
    const existing = await lstat(to).catch(() => undefined);
    if (isWhiteout(st)) {
      await rm(to, { recursive: true, force: true });
      continue;
    }
    if (st.isDirectory()) {
      if (existing && !existing.isDirectory()) await rm(to, { recursive: true, force: true });
      if (!existing?.isDirectory()) await mkdir(to);
      await copyTree(from, to, links);
      await lchown(to, st.uid, st.gid);
      await chmod(to, st.mode & 0o7777);
      await utimes(to, st.atime, st.mtime);
      continue;
    }
    if (existing) await rm(to, { recursive: true, force: true });
    const linked = st.nlink > 1 ? links.get(st.ino) : undefined;
    if (linked) {
      await link(linked, to);
    } else if (st.isSymbolicLink()) {
      await symlink(await readlink(from), to);
      await lchown(to, st.uid, st.gid);
      await lutimes(to, st.atime, st.mtime);
    } else if (st.isFile()) {
      await copyFile(from, to);
      await lchown(to, st.uid, st.gid);
      await chmod(to, st.mode & 0o7777);
      await utimes(to, st.atime, st.mtime);
    } else {
      await copySpecial(from, to); // devices and fifos: Node cannot mknod
    }
    if (st.nlink > 1 && !linked) links.set(st.ino, to);
  }
}

function copySpecial(from: string, to: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('cp', ['-a', '--no-dereference', from, to], { stdio: 'ignore' });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`copying ${from} failed`))));
  });
}

/**
 * Reads a regular file of the image (say `etc/passwd`) from the layers, top first, as the
 * container will see it: a whiteout or an opaque directory above hides lower copies.
 * Returns undefined when the image has no such regular file.
 */
export async function readImageFile(layers: UnpackedLayer[], path: string): Promise<string | undefined> {
  const parts = path.split('/').filter(Boolean);
  for (const layer of [...layers].reverse()) {
    const st = await lstat(join(layer.diff, ...parts)).catch(() => undefined);
    if (st) return st.isFile() ? readFile(join(layer.diff, ...parts), 'utf8') : undefined;
    for (let i = 1; i < parts.length; i++) {
      const ancestor = parts.slice(0, i).join('/');
      const a = await lstat(join(layer.diff, ancestor)).catch(() => undefined);
      if ((a && !a.isDirectory()) || layer.opaque.includes(ancestor)) return undefined;
    }
  }
  return undefined;
}
