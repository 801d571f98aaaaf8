// Paths inside a root that must never lead out of it: the build context, another
// stage's files, the image being built. Symbolic links are resolved the way docker's
// FollowSymlinkInScope does: an absolute target starts again at the root, `..` stops at
// the root, so a link can point anywhere and still only reach files under the root.
//
// LayerView answers lstat for the image being built from its unpacked layers (top
// first, whiteouts and opaque directories hiding what is below), without mounting.

import type { Stats } from 'node:fs';
import { lstat, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { UnpackedLayer } from '../runtime/store.js';

export interface Found {
  /** Where the entry is on the host. */
  path: string;
  st: Stats;
}

export type Lookup = (rel: string) => Promise<Found | undefined>;

export class OutsideRootError extends Error {}

/** Splits a path into clean components, refusing to climb above the root. */
export function components(path: string): string[] {
  const out: string[] = [];
  for (const part of path.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (out.length === 0) throw new OutsideRootError(`${path} points outside of the root`);
      out.pop();
    } else out.push(part);
  }
  return out;
}

/**
 * Resolves the symbolic links of `path` (relative to the root) within the root. The last
 * component is followed only with `followLast`. Returns the resolved relative path.
 */
export async function resolveInRoot(path: string, lookup: Lookup, followLast: boolean): Promise<string> {
  let resolved: string[] = [];
  let todo = path.split('/').filter((p) => p !== '' && p !== '.');
  let hops = 0;
  while (todo.length > 0) {
    const part = todo.shift()!;
    if (part === '..') {
      resolved.pop();
      continue;
    }
    const candidate = [...resolved, part];
    const found = await lookup(candidate.join('/'));
    if (found?.st.isSymbolicLink() && (todo.length > 0 || followLast)) {
      if (++hops > 40) throw new Error(`too many levels of symbolic links in ${path}`);
      const target = await readlink(found.path);
      if (target.startsWith('/')) resolved = [];
      todo = [...target.split('/').filter((p) => p !== '' && p !== '.'), ...todo];
      continue;
    }
    resolved = candidate;
  }
  return resolved.join('/');
}

/** A plain directory on the host as a root. */
export function dirLookup(root: string): Lookup {
  return async (rel) => {
    const path = rel === '' ? root : join(root, rel);
    const st = await lstat(path).catch(() => undefined);
    return st ? { path, st } : undefined;
  };
}

function isWhiteout(st: Stats): boolean {
  return st.isCharacterDevice() && st.rdev === 0;
}

/** The merged view of unpacked layers (bottom first), as overlayfs would show it. */
export function layerLookup(layers: UnpackedLayer[]): Lookup {
  return async (rel) => {
    const parts = rel.split('/').filter(Boolean);
    for (const layer of [...layers].reverse()) {
      const path = join(layer.diff, ...parts);
      const st = await lstat(path).catch(() => undefined);
      if (st) return isWhiteout(st) ? undefined : { path, st };
      // Not in this layer: is it hidden here by a whiteout, a file, or an opaque directory above it?
      for (let i = 1; i < parts.length; i++) {
        const ancestor = parts.slice(0, i).join('/');
        const a = await lstat(join(layer.diff, ancestor)).catch(() => undefined);
        if ((a && !a.isDirectory()) || layer.opaque.includes(ancestor)) return undefined;
      }
      if (parts.length > 0 && layer.opaque.includes('')) return undefined;
    }
    return undefined;
  };
}
