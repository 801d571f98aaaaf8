// Unpacks one image layer (a tar, plain or gzip) into a directory of its own, in the
// form overlayfs stacks: an OCI whiteout `.wh.<name>` becomes a character device 0/0
// named <name>, and an opaque marker `.wh..wh..opq` becomes the `trusted.overlay.opaque`
// xattr on its directory. The layer is streamed (never held in memory) and hashed on
// the way through; a diff id that does not match the image config fails the unpack.
//
// Safety: entries are confined to the destination. Names and hard-link targets with
// `..` that would leave it are refused, and no path component inside the destination is
// ever followed when it is a symlink: a symlink is data of the image (an absolute
// target is fine inside the container's root), never a way out on the host.
//
// Node has no mknod or setxattr, so device nodes, fifos, whiteouts and extended
// attributes (opaque markers, file capabilities) are collected and written at the end in
// one pass by GNU tar (`--xattrs`), from a small tar made here; everything else is
// written by Node directly.

import { spawn } from 'node:child_process';
import { constants, createReadStream } from 'node:fs';
import { chmod, lchown, link, lstat, lutimes, mkdir, open, rm, symlink, utimes } from 'node:fs/promises';
import { posix } from 'node:path';
import { type Readable, Transform, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import tar from 'tar-stream';
import { HashingStream } from '../client/digest.js';
import { hostTool } from './tools.js';

export const WHITEOUT_PREFIX = '.wh.';
export const OPAQUE_MARKER = '.wh..wh..opq';
const OVERLAY_OPAQUE_XATTR = 'SCHILY.xattr.trusted.overlay.opaque';

export class UnsafeLayerError extends Error {}

export interface UnpackResult {
  /** Bytes of the uncompressed tar (what the diff id hashes). */
  size: number;
  /** Directories (relative, no leading slash) marked opaque by this layer. */
  opaque: string[];
  /** Paths this layer deletes from the layers below it. */
  whiteouts: string[];
}

/** A tar header as tar-stream gives it, with the PAX records it keeps but does not type. */
type Header = Partial<Omit<tar.Header, 'pax'>> & { name: string; pax?: Record<string, string> | null };

/** An entry written at the end by GNU tar (devices, fifos, whiteouts, directory xattrs). */
interface Deferred {
  header: Header;
  /** For a regular file with xattrs: the file already written, whose bytes GNU tar rewrites with them. */
  content?: string;
}

/**
 * Cleans an entry name into a relative path inside the layer, or throws when it would
 * leave the layer. Returns '' for the layer's root itself.
 */
export function entryPath(name: string): string {
  const normal = posix.normalize(name.replace(/^\/+/, '')).replace(/\/+$/, '');
  if (normal === '..' || normal.startsWith('../')) throw new UnsafeLayerError(`layer entry escapes the root: ${name}`);
  return normal === '.' ? '' : normal;
}

const GZIP_MAGIC = [0x1f, 0x8b];
const ZSTD_MAGIC = [0x28, 0xb5, 0x2f, 0xfd];

async function compressionOf(blob: string): Promise<'gzip' | 'none'> {
  const fh = await open(blob, 'r');
  try {
    const head = Buffer.alloc(4);
    await fh.read(head, 0, 4, 0);
    if (ZSTD_MAGIC.every((b, i) => head[i] === b)) throw new Error('zstd-compressed layers are not supported yet');
    return GZIP_MAGIC.every((b, i) => head[i] === b) ? 'gzip' : 'none';
  } finally {
    await fh.close();
  }
}

/**
 * Unpacks the layer blob at `blob` into `dest` (an empty directory), checking that the
 * uncompressed stream hashes to `diffId`. On any error `dest` is left partial: the
 * caller unpacks into a temporary directory and removes it.
 */
export async function unpackLayer(blob: string, diffId: string, dest: string): Promise<UnpackResult> {
  const hasher = new HashingStream(diffId.startsWith('sha512:') ? 'sha512' : 'sha256');
  const extract = tar.extract();
  const stages: (NodeJS.ReadableStream | NodeJS.WritableStream)[] = [createReadStream(blob)];
  if ((await compressionOf(blob)) === 'gzip') stages.push(createGunzip());
  const feeding = pipeline([...stages, hasher, endOfArchive(hasher), extract] as unknown as [Readable, Writable]);
  const writer = new LayerWriter(dest);
  try {
    for await (const entry of extract) {
      await writer.write(entry.header as Header, entry as unknown as Readable);
      entry.resume(); // drain what a handler did not read (directories, links)
    }
    await feeding;
  } catch (err) {
    extract.destroy();
    await feeding.catch(() => undefined);
    throw err;
  }
  hasher.check(diffId);
  await writer.finish();
  return { size: hasher.bytes, opaque: writer.opaque, whiteouts: writer.whiteouts };
}

/**
 * Completes the archive after the hashed bytes: umoci (0.4) writes layers that end right
 * after the last file's data, without the padding and the two zero blocks of a tar's
 * end, and tar-stream refuses such an archive. The diff id hashes what is really there,
 * so the missing end is added only on the way to the parser.
 */
function endOfArchive(hashed: HashingStream): Transform {
  return new Transform({
    transform(chunk, _enc, cb) {
      cb(null, chunk);
    },
    flush(cb) {
      cb(null, Buffer.alloc(((512 - (hashed.bytes % 512)) % 512) + 1024));
    },
  });
}

class LayerWriter {
  readonly opaque: string[] = [];
  readonly whiteouts: string[] = [];
  private readonly deferred: Deferred[] = [];
  private readonly dirTimes: { path: string; mtime: Date }[] = [];
  /** Directories already checked to be real directories (not symlinks) inside dest. */
  private readonly knownDirs = new Set<string>(['']);

  constructor(private readonly dest: string) {}

  private abs(rel: string): string {
    return rel === '' ? this.dest : `${this.dest}/${rel}`;
  }

  /**
   * Makes sure every parent of `rel` is a real directory inside dest, creating missing
   * ones. A symlink or file in the way is refused rather than followed or replaced.
   */
  private async ensureParents(rel: string): Promise<void> {
    const parts = rel.split('/').slice(0, -1);
    let cur = '';
    for (const part of parts) {
      cur = cur ? `${cur}/${part}` : part;
      if (this.knownDirs.has(cur)) continue;
      const st = await lstat(this.abs(cur)).catch((e: NodeJS.ErrnoException) => {
        if (e.code === 'ENOENT') return undefined;
        throw e;
      });
      if (!st) await mkdir(this.abs(cur), { mode: 0o755 });
      else if (!st.isDirectory()) throw new UnsafeLayerError(`layer entry ${rel} goes through ${cur}, which is not a directory`);
      this.knownDirs.add(cur);
    }
  }

  /** Removes whatever is at `rel` (a later entry replaces an earlier one). */
  private async clear(rel: string, keepDir: boolean): Promise<boolean> {
    const st = await lstat(this.abs(rel)).catch(() => undefined);
    if (!st) return false;
    if (keepDir && st.isDirectory()) return true;
    await rm(this.abs(rel), { recursive: true, force: true });
    // Anything cached below a removed directory is gone too.
    for (const d of this.knownDirs) if (d === rel || d.startsWith(`${rel}/`)) this.knownDirs.delete(d);
    return false;
  }

  async write(header: Header, body: Readable): Promise<void> {
    const rel = entryPath(header.name);
    const base = posix.basename(rel);
    if (rel === '') return; // the layer root: its attributes are the container root's, not ours to set
    await this.ensureParents(rel);
    const dir = posix.dirname(rel) === '.' ? '' : posix.dirname(rel);

    if (base === OPAQUE_MARKER) {
      this.opaque.push(dir);
      await mkdir(this.abs(dir), { recursive: true });
      this.deferred.push({
        header: { name: `${dir || '.'}/`, type: 'directory', mode: 0o755, pax: { [OVERLAY_OPAQUE_XATTR]: 'y' } },
      });
      return;
    }
    if (base.startsWith(WHITEOUT_PREFIX)) {
      const target = posix.join(dir, base.slice(WHITEOUT_PREFIX.length));
      entryPath(target);
      this.whiteouts.push(target);
      await this.clear(target, false);
      this.deferred.push({ header: { name: target, type: 'character-device', devmajor: 0, devminor: 0, mode: 0o600 } });
      return;
    }

    const mode = (header.mode ?? 0o644) & 0o7777;
    const uid = header.uid ?? 0;
    const gid = header.gid ?? 0;
    const mtime = header.mtime ?? new Date(0);
    const path = this.abs(rel);
    switch (header.type) {
      case 'directory': {
        if (!(await this.clear(rel, true))) await mkdir(path, { mode: 0o700 });
        await lchown(path, uid, gid);
        await chmod(path, mode);
        this.knownDirs.add(rel);
        this.dirTimes.push({ path, mtime });
        const xattrs = xattrRecords(header);
        if (xattrs) this.deferred.push({ header: { name: `${rel}/`, type: 'directory', mode, uid, gid, mtime, pax: xattrs } });
        return;
      }
      case 'file':
      case 'contiguous-file':
      case null:
      case undefined: {
        await this.clear(rel, false);
        // O_EXCL|O_NOFOLLOW: the path was just cleared, so nothing may redirect the write.
        const fh = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
        try {
          // Plain iteration: tar-stream entries are streamx streams, which Node's pipeline does not drain reliably.
          for await (const chunk of body) await fh.write(chunk as Uint8Array);
          // chown before chmod: chown clears setuid/setgid bits.
          await fh.chown(uid, gid);
          await fh.chmod(mode);
          await fh.utimes(mtime, mtime);
        } finally {
          await fh.close();
        }
        // File capabilities (security.capability) and other xattrs: GNU tar writes the file again with them.
        const xattrs = xattrRecords(header);
        if (xattrs) {
          const { size } = await lstat(path);
          this.deferred.push({ header: { name: rel, type: 'file', size, mode, uid, gid, mtime, pax: xattrs }, content: path });
        }
        return;
      }
      case 'symlink': {
        await this.clear(rel, false);
        await symlink(header.linkname ?? '', path);
        await lchown(path, uid, gid);
        await lutimes(path, mtime, mtime);
        return;
      }
      case 'link': {
        const target = entryPath(header.linkname ?? '');
        if (this.deferred.some((d) => d.header.name === target)) {
          // Hard link to a device or fifo that GNU tar writes at the end: it links it then.
          this.deferred.push({ header: { ...header, name: rel, linkname: target } });
          return;
        }
        await this.ensureParents(target);
        const st = await lstat(this.abs(target)).catch(() => undefined);
        if (!st || st.isDirectory()) throw new UnsafeLayerError(`layer entry ${rel} links to ${target}, which is not a file in this layer`);
        await this.clear(rel, false);
        await link(this.abs(target), path);
        return;
      }
      case 'character-device':
      case 'block-device':
      case 'fifo':
        await this.clear(rel, false);
        this.deferred.push({ header: { ...header, name: rel } });
        return;
      default:
        // pax/gnu headers are consumed by tar-stream; anything else has no meaning in a rootfs.
        return;
    }
  }

  /** Writes the deferred entries with GNU tar, then sets directory times (children change them). */
  async finish(): Promise<void> {
    if (this.deferred.length > 0) {
      // Re-check parents now: a later entry may have replaced a directory with a symlink.
      for (const d of this.deferred) {
        const rel = entryPath(d.header.name);
        if (rel !== '') await this.ensureParents(rel);
      }
      await extractWithGnuTar(this.deferred, this.dest);
    }
    for (const { path, mtime } of this.dirTimes.reverse()) await utimes(path, mtime, mtime);
  }
}

/** The `SCHILY.xattr.*` PAX records of an entry (how tar carries extended attributes). */
function xattrRecords(header: Header): Record<string, string> | undefined {
  const entries = Object.entries(header.pax ?? {}).filter(([k]) => k.startsWith('SCHILY.xattr.'));
  return entries.length > 0 ? Object.fromEntries(entries) : undefined;
}

async function extractWithGnuTar(entries: Deferred[], dest: string): Promise<void> {
  const pack = tar.pack();
  const child = spawn(
    hostTool('tar'),
    ['--extract', '--xattrs', '--xattrs-include=*', '--same-permissions', '--same-owner', '--no-recursion', '--file=-', `--directory=${dest}`],
    { stdio: ['pipe', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<number>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve(code ?? 1));
  });
  const feeding = pipeline(pack as unknown as Readable, child.stdin);
  for (const { header, content } of entries) {
    if (!content) {
      pack.entry(header as tar.Header);
      continue;
    }
    await new Promise<void>((resolve, reject) => {
      const sink = pack.entry(header as tar.Header, (err) => (err ? reject(err) : resolve()));
      createReadStream(content).on('error', reject).pipe(sink as unknown as Writable);
    });
  }
  pack.finalize();
  await feeding;
  const code = await exited;
  if (code !== 0) throw new Error(`writing device nodes, whiteouts and xattrs failed (tar exit ${code}): ${stderr.trim()}`);
}
