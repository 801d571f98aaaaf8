// A directory in overlayfs form (a container's upper directory, or a staging directory
// a COPY filled) becomes an OCI layer blob: a gzip tar with OCI whiteouts.
//
// GNU tar reads the directory (every file type, hard links, xattrs, sorted by name);
// each entry is then rewritten here with only what the image spec keeps (name, mode,
// owner as numbers, size, mtime in seconds, link target, device numbers, xattrs):
//   - a character device 0/0 (overlayfs' whiteout) becomes an empty `.wh.<name>`
//   - a directory with `trusted.overlay.opaque=y` gets a `.wh..wh..opq` entry
//   - `trusted.overlay.*` xattrs are dropped (they are overlayfs' own bookkeeping)
//   - with SOURCE_DATE_EPOCH, times later than it are clamped to it (BuildKit's rule)
// so the same files always give the same bytes, hence the same diff id and digest.

import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { dirname, join, posix } from 'node:path';
import { type Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import tar from 'tar-stream';
import { HashingStream } from '../client/digest.js';
import type { OciLayout } from '../client/layout.js';
import { OPAQUE_MARKER, WHITEOUT_PREFIX } from '../runtime/unpack.js';
import { hostTool } from '../runtime/tools.js';

export const OCI_LAYER_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';

/** The diff id of a tar with no entries (two zero blocks): a step that changed nothing. */
export const EMPTY_LAYER_DIFF_ID = 'sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef';

export interface LayerBlob {
  diffId: string;
  digest: string;
  /** Size of the compressed blob. */
  size: number;
  mediaType: string;
}

type Header = Partial<Omit<tar.Header, 'pax'>> & { name: string; pax?: Record<string, string> | null };

const OVERLAY_XATTR = 'SCHILY.xattr.trusted.overlay.';

/** The SOURCE_DATE_EPOCH of the environment, as a Date, when set. */
export function sourceDateEpoch(env: NodeJS.ProcessEnv = process.env): Date | undefined {
  const raw = env.SOURCE_DATE_EPOCH;
  if (raw === undefined || raw === '') return undefined;
  if (!/^\d+$/.test(raw)) throw new Error(`SOURCE_DATE_EPOCH must be a number of seconds, got ${raw}`);
  return new Date(Number(raw) * 1000);
}

function rewrite(header: Header, epoch: Date | undefined): Header[] {
  const name = header.name.replace(/^\.\//, '');
  const mtime = header.mtime && epoch && header.mtime > epoch ? epoch : new Date(Math.floor((header.mtime ?? new Date(0)).getTime() / 1000) * 1000);
  const base: Header = { name, mode: (header.mode ?? 0) & 0o7777, uid: header.uid ?? 0, gid: header.gid ?? 0, mtime, type: header.type, size: 0 };
  if (header.type === 'character-device' && header.devmajor === 0 && header.devminor === 0) {
    const dir = posix.dirname(name);
    return [{ ...base, name: posix.join(dir, `${WHITEOUT_PREFIX}${posix.basename(name)}`), type: 'file', mode: 0o644 }];
  }
  const pax = Object.fromEntries(Object.entries(header.pax ?? {}).filter(([k]) => k.startsWith('SCHILY.xattr.') && !k.startsWith(OVERLAY_XATTR)));
  const out: Header = { ...base, ...(Object.keys(pax).length > 0 ? { pax } : {}) };
  switch (header.type) {
    case 'file':
    case 'contiguous-file':
      return [{ ...out, type: 'file', size: header.size ?? 0 }];
    case 'symlink':
    case 'link':
      return [{ ...out, linkname: header.type === 'link' ? (header.linkname ?? '').replace(/^\.\//, '') : header.linkname }];
    case 'character-device':
    case 'block-device':
      return [{ ...out, devmajor: header.devmajor, devminor: header.devminor }];
    case 'directory': {
      const entries = [{ ...out, name: name.endsWith('/') ? name : `${name}/` }];
      if (header.pax?.[`${OVERLAY_XATTR}opaque`] === 'y') entries.push({ ...base, name: posix.join(name, OPAQUE_MARKER), type: 'file', mode: 0o644 });
      return entries;
    }
    case 'fifo':
      return [out];
    default:
      return []; // sockets and the like have no place in a layer
  }
}

/**
 * Writes the layer of `dir` as a gzip blob into `layout` (written under .partial/, then
 * renamed into place) and returns its digests. The root directory's own entry, and the
 * paths in `exclude` (relative, no trailing slash), are left out.
 */
export async function writeLayer(dir: string, layout: OciLayout, epoch?: Date, exclude: Set<string> = new Set()): Promise<LayerBlob> {
  const pack = tar.pack();
  const tmp = join(layout.dir, '.partial', `layer-${randomBytes(8).toString('hex')}`);
  await mkdir(dirname(tmp), { recursive: true });
  const diff = new HashingStream('sha256');
  const blob = new HashingStream('sha256');
  const writing = pipeline(pack as unknown as Readable, diff, createGzip(), blob, createWriteStream(tmp));
  // No await from here until the entries are iterated: tar-stream's extractor drops
  // entries nobody is reading yet.
  const child = spawn(
    hostTool('tar'),
    ['--create', '--file=-', `--directory=${dir}`, '--sort=name', '--numeric-owner', '--format=posix', '--xattrs', '--xattrs-include=*', '.'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<number>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve(code ?? 1));
  });
  const extract = tar.extract();
  child.stdout.pipe(extract as unknown as Writable);
  try {
    for await (const entry of extract) {
      const header = entry.header as Header;
      const rel = header.name.replace(/^\.\/?/, '').replace(/\/$/, '');
      const rewritten = rel === '' || exclude.has(rel) ? [] : rewrite(header, epoch);
      for (const h of rewritten) {
        if (h.type === 'file' && (h.size ?? 0) > 0) {
          // Plain iteration: tar-stream's streams do not go through Node's pipeline() reliably.
          await new Promise<void>((resolve, reject) => {
            const sink = pack.entry(h as tar.Header, (err) => (err ? reject(err) : resolve()));
            (async () => {
              for await (const chunk of entry) (sink as unknown as Writable).write(chunk as Buffer);
              (sink as unknown as Writable).end();
            })().catch(reject);
          });
        } else if (h.type === 'file') {
          pack.entry(h as tar.Header, Buffer.alloc(0)); // without a body, tar-stream would wait for one
        } else {
          pack.entry(h as tar.Header);
        }
      }
      entry.resume();
    }
    const code = await exited;
    if (code !== 0) throw new Error(`reading ${dir} with tar failed (exit ${code}): ${stderr.trim()}`);
    pack.finalize();
    await writing;
  } catch (err) {
    pack.destroy();
    await writing.catch(() => undefined);
    await rm(tmp, { force: true });
    throw err;
  }
  const digest = `sha256:${blob.hash.digest('hex')}`;
  await mkdir(dirname(layout.blobPath(digest)), { recursive: true });
  await rename(tmp, layout.blobPath(digest));
  return { diffId: `sha256:${diff.hash.digest('hex')}`, digest, size: blob.bytes, mediaType: OCI_LAYER_GZIP };
}
