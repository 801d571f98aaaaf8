// A container's writable layer as an image layer: what RUN and `berth commit` keep.
// On overlayfs the container's changes are its upper directory, already in the form a
// layer needs (whiteouts, opaque directories). The runtime's setup script makes mount
// points in it when the image lacks them (/proc, /sys, /dev, and /etc/hostname,
// /etc/hosts, /etc/resolv.conf for its bind mounts); docker keeps those in an "init"
// layer that is never committed, so here they are left out when empty and new (the
// container's directory itself is not touched: it may still run).

import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { OciLayout } from '../client/layout.js';
import type { ContainerState } from '../runtime/containers.js';
import { writeLayer, type LayerBlob } from './layer.js';
import type { Lookup } from './paths.js';

const MOUNT_FILES = ['etc/hostname', 'etc/hosts', 'etc/resolv.conf'];
const MOUNT_DIRS = ['proc', 'sys', 'dev'];

async function isEmptyDir(path: string): Promise<boolean> {
  const st = await lstat(path).catch(() => undefined);
  return !!st?.isDirectory() && (await readdir(path)).length === 0;
}

/** The runtime's mount points in an upper directory, where the image had none. */
async function mountPoints(upper: string, image: Lookup): Promise<Set<string>> {
  const out = new Set<string>();
  for (const file of MOUNT_FILES) {
    const st = await lstat(join(upper, file)).catch(() => undefined);
    if (st?.isFile() && st.size === 0 && !(await image(file))) out.add(file);
  }
  for (const dir of MOUNT_DIRS) {
    if ((await isEmptyDir(join(upper, dir))) && !(await image(dir))) out.add(dir);
  }
  // /etc, created or copied up only to hold those files, goes too when nothing else changed in it.
  const etc = await lstat(join(upper, 'etc')).catch(() => undefined);
  if (etc?.isDirectory() && (await readdir(join(upper, 'etc'))).every((name) => out.has(`etc/${name}`))) {
    const below = await image('etc');
    if (!below || (below.st.isDirectory() && below.st.mode === etc.mode && below.st.uid === etc.uid && below.st.gid === etc.gid)) out.add('etc');
  }
  return out;
}

/** The layer of the changes a container made, written into `layout`. */
export async function containerLayer(dir: string, state: ContainerState, image: Lookup, layout: OciLayout, epoch?: Date): Promise<LayerBlob> {
  if (state.rootfs !== 'overlay') {
    throw new Error(`container ${state.name} runs on a copied root filesystem (BERTH_ROOTFS=copy); its changes can only be kept on overlayfs`);
  }
  const upper = join(dir, 'upper');
  return writeLayer(upper, layout, epoch, await mountPoints(upper, image));
}
