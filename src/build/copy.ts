// COPY and ADD: what they read (planned first, so the layer cache can hash it) and the
// staging directory they fill, which then becomes the step's layer. Docker's rules:
//
// - The destination is relative to WORKDIR; it is a directory when it ends with / (or is
//   `.`), or when the image already has a directory there; several sources need a /.
// - A directory source copies its contents, not itself. Files keep their mode and time;
//   owners are 0:0 unless --chown (`user[:group]`, names from the image's /etc/passwd and
//   /etc/group; a user alone means the same number for the group); --chmod is octal.
// - Directories the copy creates are 0755, owned like the files; existing ones keep
//   their attributes (the layer carries them unchanged).
// - ADD unpacks a local tar (plain, gzip, bzip2, xz) into the destination, and
//   downloads a URL (mode 0600).
//
// Nothing is ever written through a symbolic link: every directory on the way in the
// staging directory is checked, and anything in the way of an entry is replaced.

import { spawn } from 'node:child_process';
import { createWriteStream, type Stats } from 'node:fs';
import { chmod, copyFile, constants, lchown, lstat, lutimes, mkdir, mkdtemp, open, readFile, readlink, rm, symlink, utimes } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { hostTool } from '../runtime/tools.js';
import { DockerfileError } from './dockerfile.js';
import { resolveInRoot, type Found, type Lookup } from './paths.js';
import { hashEntries, SourceTree, type Source, type TreeEntry } from './sources.js';

export interface Owner {
  uid: number;
  gid: number;
}

/** One thing to copy: a file, a directory's contents (entries), or a file named by a URL. */
interface Item {
  kind: 'file' | 'dir';
  /** Name of a file when the destination is a directory. */
  name: string;
  found: Found;
  entries?: TreeEntry[];
  /** Keep the owners of the entries (an unpacked archive). */
  keepOwners?: boolean;
  mode?: number;
}

export interface CopyPlan {
  items: Item[];
  /** Resolved destination, relative to the image root. */
  dest: string;
  destIsDir: boolean;
  owner?: Owner;
  chmod?: number;
  /** Hash of everything the step reads (the cache key's input part). */
  inputHash: string;
  /** Temporary directories the plan made (downloads, unpacked archives), removed by `cleanup`. */
  temps: string[];
}

export interface CopyRequest {
  keyword: 'COPY' | 'ADD';
  line: number;
  sources: string[];
  dest: string;
  workdir: string;
  chown?: string;
  chmod?: string;
  tree: SourceTree;
  image: Lookup;
  /** Where temporary files go. */
  scratch: string;
}

const URL_RE = /^https?:\/\//i;

function fail(req: CopyRequest, message: string): never {
  throw new DockerfileError(`${req.keyword} failed: ${message}`, req.line);
}

/** `--chown=user[:group]` against the image's own user and group files. */
export async function parseChown(spec: string, image: Lookup): Promise<Owner> {
  const [user = '', group] = spec.split(':');
  const table = async (file: string) => {
    const found = await image(file);
    const text = found?.st.isFile() ? await readFile(found.path, 'utf8') : '';
    return text.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.split(':'));
  };
  const id = async (name: string, file: string, what: string) => {
    if (/^\d+$/.test(name)) return Number(name);
    const entry = (await table(file)).find((e) => e[0] === name);
    if (!entry) throw new Error(`unable to find ${what} ${name}: no matching entry in the image's /${file}`);
    return Number(entry[2]);
  };
  if (user === '') throw new Error(`--chown=${spec}: a user is required`);
  const uid = await id(user, 'etc/passwd', 'user');
  const gid = group === undefined || group === '' ? uid : await id(group, 'etc/group', 'group');
  return { uid, gid };
}

const GZIP = [0x1f, 0x8b];
const BZIP2 = [0x42, 0x5a, 0x68];
const XZ = [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00];

function run(file: string, args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? 1, stderr }));
  });
}

/** Whether ADD unpacks this file: a tar, or a gzip/bzip2/xz-compressed tar (docker checks the content, not the name). */
async function isArchive(path: string): Promise<boolean> {
  const fh = await open(path, 'r');
  const head = Buffer.alloc(512);
  const { bytesRead } = await fh.read(head, 0, 512, 0).finally(() => fh.close());
  const starts = (magic: number[]) => magic.every((b, i) => head[i] === b);
  if (bytesRead >= 262 && head.toString('latin1', 257, 262) === 'ustar') return true;
  if (!starts(GZIP) && !starts(BZIP2) && !starts(XZ)) return false;
  // Compressed: an archive only when a tar is inside.
  return (await run(hostTool('tar'), ['--list', `--file=${path}`])).code === 0;
}

async function download(req: CopyRequest, url: string): Promise<{ path: string; name: string; mtime: Date }> {
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(120_000), redirect: 'follow' });
  } catch (err) {
    const cause = (err as { cause?: { message?: string } }).cause?.message ?? (err as Error).message;
    fail(req, `cannot fetch ${url}: ${cause}`);
  }
  if (!res.ok || !res.body) fail(req, `cannot fetch ${url}: HTTP ${res.status} ${res.statusText}`);
  const dir = await mkdtemp(join(req.scratch, 'url-'));
  const path = join(dir, 'download');
  await pipeline(Readable.fromWeb(res.body as import('node:stream/web').ReadableStream), createWriteStream(path, { mode: 0o600 }));
  const name = posix.basename(new URL(url).pathname);
  const modified = res.headers.get('last-modified');
  return { path, name, mtime: modified ? new Date(modified) : new Date() };
}

export async function planCopy(req: CopyRequest): Promise<CopyPlan> {
  const temps: string[] = [];
  const items: Item[] = [];
  const hashed: { name: string; found: Found }[] = [];
  const endsWithSlash = req.dest.endsWith('/') || req.dest === '.' || req.dest.endsWith('/.');
  let count = 0;
  for (const arg of req.sources) {
    if (URL_RE.test(arg)) {
      if (req.keyword === 'COPY') fail(req, `source can't be a URL for COPY: ${arg}`);
      const got = await download(req, arg);
      temps.push(join(got.path, '..'));
      const found = { path: got.path, st: await lstat(got.path) };
      if (!got.name && endsWithSlash) fail(req, `cannot determine a file name from ${arg}`);
      items.push({ kind: 'file', name: got.name, found, mode: 0o600 });
      hashed.push({ name: arg, found });
      count++;
      continue;
    }
    let sources: Source[];
    try {
      sources = await req.tree.resolve(arg);
    } catch (err) {
      fail(req, (err as Error).message);
    }
    count += sources.length;
    for (const source of sources) {
      const name = posix.basename(source.rel);
      if (source.found.st.isDirectory()) {
        const entries = await req.tree.walk(source);
        items.push({ kind: 'dir', name, found: source.found, entries });
        hashed.push({ name: source.rel, found: source.found }, ...entries.map((e) => ({ name: `${source.rel}/${e.sub}`, found: e.found })));
      } else if (req.keyword === 'ADD' && source.found.st.isFile() && (await isArchive(source.found.path))) {
        const dir = await mkdtemp(join(req.scratch, 'archive-'));
        temps.push(dir);
        const { code, stderr } = await run(hostTool('tar'), ['--extract', `--file=${source.found.path}`, `--directory=${dir}`, '--numeric-owner', '--same-owner', '--same-permissions']);
        if (code !== 0) fail(req, `unpacking ${source.rel} failed: ${stderr.trim()}`);
        const unpacked = new SourceTree(dir, [], source.rel);
        const root = { rel: '', found: { path: dir, st: await lstat(dir) } };
        items.push({ kind: 'dir', name, found: root.found, entries: await unpacked.walk(root), keepOwners: true });
        hashed.push({ name: source.rel, found: source.found });
      } else {
        items.push({ kind: 'file', name, found: source.found });
        hashed.push({ name: source.rel, found: source.found });
      }
    }
  }
  if (count > 1 && !endsWithSlash) {
    fail(req, `When using ${req.keyword} with more than one source file, the destination must be a directory and end with a /`);
  }
  const destAbs = req.dest.startsWith('/') ? req.dest : posix.join(req.workdir || '/', req.dest);
  const dest = await resolveInRoot(destAbs, req.image, true);
  const existing = await req.image(dest);
  let owner: Owner | undefined;
  if (req.chown !== undefined) {
    try {
      owner = await parseChown(req.chown, req.image);
    } catch (err) {
      fail(req, (err as Error).message);
    }
  }
  let mode: number | undefined;
  if (req.chmod !== undefined) {
    if (!/^[0-7]{3,4}$/.test(req.chmod)) fail(req, `invalid --chmod=${req.chmod}: an octal mode such as 755 is expected`);
    mode = parseInt(req.chmod, 8);
  }
  const inputHash = await hashEntries(hashed);
  return { items, dest, destIsDir: endsWithSlash || !!existing?.st.isDirectory(), owner, chmod: mode, inputHash, temps };
}

export async function cleanup(plan: CopyPlan): Promise<void> {
  for (const t of plan.temps) await rm(t, { recursive: true, force: true });
}

/** The staging directory of a COPY/ADD: what the layer will hold. */
class Staging {
  private readonly knownDirs = new Set<string>(['']);
  private readonly dirTimes: { path: string; mtime: Date }[] = [];

  constructor(
    private readonly root: string,
    private readonly image: Lookup,
    private readonly newOwner: Owner,
  ) {}

  private abs(rel: string): string {
    return rel === '' ? this.root : join(this.root, rel);
  }

  /** Makes the directories above `rel`: as the image has them, or new (0755). */
  async parents(rel: string): Promise<void> {
    const parts = rel.split('/').filter(Boolean);
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      if (this.knownDirs.has(dir)) continue;
      const inImage = await this.image(dir);
      const st = inImage?.st.isDirectory() ? inImage.st : undefined;
      await this.dir(dir, st ? { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: st.mtime } : { mode: 0o755, ...this.newOwner, mtime: new Date() });
    }
  }

  /** Creates (or updates) a directory at `rel`, replacing anything else there. */
  async dir(rel: string, attrs: { mode: number; uid: number; gid: number; mtime: Date }): Promise<void> {
    await this.parents(rel);
    const path = this.abs(rel);
    const st = await lstat(path).catch(() => undefined);
    if (st && !st.isDirectory()) await this.clear(rel);
    if (!st?.isDirectory()) await mkdir(path);
    await lchown(path, attrs.uid, attrs.gid);
    await chmod(path, attrs.mode);
    this.knownDirs.add(rel);
    this.dirTimes.push({ path, mtime: attrs.mtime });
  }

  private async clear(rel: string): Promise<void> {
    await rm(this.abs(rel), { recursive: true, force: true });
    for (const d of this.knownDirs) if (d === rel || d.startsWith(`${rel}/`)) this.knownDirs.delete(d);
  }

  /** Writes a file or symbolic link (from `found`) at `rel`. */
  async entry(rel: string, found: Found, owner: Owner, mode: number | undefined): Promise<void> {
    await this.parents(rel);
    await this.clear(rel);
    const path = this.abs(rel);
    const { st } = found;
    if (st.isSymbolicLink()) {
      await symlink(await readlink(found.path), path);
      await lchown(path, owner.uid, owner.gid);
      await lutimes(path, st.atime, st.mtime);
    } else if (st.isFile()) {
      await copyFile(found.path, path, constants.COPYFILE_EXCL);
      await lchown(path, owner.uid, owner.gid);
      await chmod(path, mode ?? st.mode & 0o7777);
      await utimes(path, st.mtime, st.mtime);
    }
    // Devices, fifos and sockets in a build context are not copied (docker refuses most of them too).
  }

  /** Directory times last: writing into a directory changes its time. */
  async finish(): Promise<void> {
    for (const { path, mtime } of this.dirTimes.reverse()) await utimes(path, mtime, mtime);
  }
}

/** Fills `staging` with what `plan` copies. */
export async function applyCopy(plan: CopyPlan, staging: string, image: Lookup): Promise<void> {
  const owner = plan.owner ?? { uid: 0, gid: 0 };
  const out = new Staging(staging, image, owner);
  const ownerOf = (st: Stats, keep?: boolean) => (keep && !plan.owner ? { uid: st.uid, gid: st.gid } : owner);
  for (const item of plan.items) {
    if (item.kind === 'file') {
      const rel = plan.destIsDir ? posix.join(plan.dest, item.name) : plan.dest;
      if (rel === '') throw new Error('cannot copy a file onto the root directory');
      await out.entry(rel, item.found, owner, plan.chmod ?? item.mode);
      continue;
    }
    // The destination directory itself: kept as the image has it, or made.
    if (plan.dest !== '') {
      const inImage = await image(plan.dest);
      const st = inImage?.st.isDirectory() ? inImage.st : undefined;
      await out.dir(plan.dest, st ? { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: st.mtime } : { mode: 0o755, ...owner, mtime: new Date() });
    }
    for (const e of item.entries ?? []) {
      const rel = plan.dest ? `${plan.dest}/${e.sub}` : e.sub;
      const o = ownerOf(e.found.st, item.keepOwners);
      if (e.found.st.isDirectory()) await out.dir(rel, { mode: plan.chmod ?? e.found.st.mode & 0o7777, ...o, mtime: e.found.st.mtime });
      else await out.entry(rel, e.found, o, plan.chmod);
    }
  }
  await out.finish();
}

/** Makes the directory `dest` (and its missing parents: 0755, root) in `staging`. */
export async function stageDirectory(staging: string, dest: string, image: Lookup): Promise<void> {
  const out = new Staging(staging, image, { uid: 0, gid: 0 });
  await out.dir(dest, { mode: 0o755, uid: 0, gid: 0, mtime: new Date() });
  await out.finish();
}
