// Where COPY and ADD read from: the build context (with .dockerignore applied) or the
// files of another stage or image (`COPY --from`). Sources are resolved as docker does:
// cleaned relative to the root (a path above it is "outside the build context"), globs
// (`*`, `?`, `[...]`) matched one component at a time, symbolic links of the named path
// followed within the root; inside a copied directory, links are copied as links.

import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { isIgnored, parseDockerignore, type IgnorePattern } from './dockerignore.js';
import { components, dirLookup, OutsideRootError, resolveInRoot, type Found, type Lookup } from './paths.js';

export class SourceError extends Error {}

/** One file or directory to copy, and where it is in its tree. */
export interface Source {
  /** Path relative to the tree's root (after following links). */
  rel: string;
  found: Found;
}

/** An entry under a copied directory, relative to that directory. */
export interface TreeEntry {
  sub: string;
  found: Found;
}

const GLOB = /[*?[]/;

function globToRegExp(component: string): RegExp {
  let re = '';
  for (let i = 0; i < component.length; i++) {
    const ch = component[i]!;
    if (ch === '*') re += '[^/]*';
    else if (ch === '?') re += '[^/]';
    else if (ch === '[') {
      const end = component.indexOf(']', i + 2);
      if (end < 0) throw new SourceError(`syntax error in pattern ${component}`);
      re += `[${component.slice(i + 1, end).replace(/^!/, '^').replace(/\\/g, '\\\\')}]`;
      i = end;
    } else if (ch === '\\' && i + 1 < component.length) re += component[++i]!.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    else re += ch.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

export class SourceTree {
  private readonly lookup: Lookup;

  constructor(
    readonly root: string,
    private readonly ignore: IgnorePattern[] = [],
    /** How to name the tree in errors: "build context", "stage builder"... */
    readonly label = 'build context',
  ) {
    this.lookup = dirLookup(root);
  }

  /** The build context at `dir`, with its .dockerignore. */
  static async context(dir: string): Promise<SourceTree> {
    const text = await readFile(join(dir, '.dockerignore'), 'utf8').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return '';
      throw err;
    });
    return new SourceTree(dir, parseDockerignore(text));
  }

  private ignored(rel: string): boolean {
    return rel !== '' && this.ignore.length > 0 && isIgnored(this.ignore, rel);
  }

  /** The sources a COPY/ADD argument names: one path, or every match of a glob (sorted). */
  async resolve(arg: string): Promise<Source[]> {
    let parts: string[];
    try {
      parts = components(arg); // relative to the root whether or not it starts with /
    } catch (err) {
      if (err instanceof OutsideRootError) throw new SourceError(`forbidden path outside the ${this.label}: ${arg}`);
      throw err;
    }
    const candidates = GLOB.test(arg) ? await this.glob(parts) : [parts.join('/')];
    const out: Source[] = [];
    for (const candidate of candidates) {
      const rel = await resolveInRoot(candidate, this.lookup, true);
      const found = await this.lookup(rel);
      if (!found || this.ignored(rel)) {
        if (candidates.length === 1 && !GLOB.test(arg)) {
          throw new SourceError(`${arg}: not found in the ${this.label}${found ? ' (excluded by .dockerignore)' : ''}`);
        }
        continue;
      }
      out.push({ rel, found });
    }
    if (out.length === 0) throw new SourceError(`no source files were specified: ${arg} matches nothing in the ${this.label}`);
    return out;
  }

  private async glob(parts: string[]): Promise<string[]> {
    let matches = [''];
    for (const part of parts) {
      const next: string[] = [];
      for (const base of matches) {
        if (!GLOB.test(part)) {
          next.push(base ? `${base}/${part}` : part);
          continue;
        }
        const dir = await this.lookup(await resolveInRoot(base, this.lookup, true));
        if (!dir?.st.isDirectory()) continue;
        const re = globToRegExp(part);
        for (const name of (await readdir(dir.path)).sort()) {
          if (re.test(name)) next.push(base ? `${base}/${name}` : name);
        }
      }
      matches = next;
    }
    return matches;
  }

  /**
   * Every entry under the directory `source` (not the directory itself), parents before
   * children, names sorted, .dockerignore applied. An ignored directory is still entered
   * when a `!` pattern could bring something back below it.
   */
  async walk(source: Source): Promise<TreeEntry[]> {
    const out: TreeEntry[] = [];
    const visit = async (rel: string, sub: string): Promise<void> => {
      const dir = rel === '' ? this.root : join(this.root, rel);
      for (const name of (await readdir(dir)).sort()) {
        const childRel = rel ? `${rel}/${name}` : name;
        const childSub = sub ? `${sub}/${name}` : name;
        const found = (await this.lookup(childRel))!;
        const ignored = this.ignored(childRel);
        if (!ignored) out.push({ sub: childSub, found });
        if (found.st.isDirectory() && (!ignored || this.ignore.some((p) => p.exclusion))) await visit(childRel, childSub);
      }
    };
    await visit(source.rel, '');
    // A directory that was ignored but holds an exception is added back (parents first).
    return this.ignore.some((p) => p.exclusion) ? withParents(out, await this.parentsOf(source, out)) : out;
  }

  private async parentsOf(source: Source, entries: TreeEntry[]): Promise<TreeEntry[]> {
    const have = new Set(entries.map((e) => e.sub));
    const missing: TreeEntry[] = [];
    for (const e of entries) {
      const parts = e.sub.split('/');
      for (let i = 1; i < parts.length; i++) {
        const sub = parts.slice(0, i).join('/');
        if (have.has(sub)) continue;
        have.add(sub);
        missing.push({ sub, found: (await this.lookup(source.rel ? `${source.rel}/${sub}` : sub))! });
      }
    }
    return missing;
  }
}

function withParents(entries: TreeEntry[], parents: TreeEntry[]): TreeEntry[] {
  return [...entries, ...parents].sort((a, b) => (a.sub < b.sub ? -1 : a.sub > b.sub ? 1 : 0));
}

/**
 * A hash of what a COPY/ADD reads: names, types, modes, link targets and file contents
 * (not times, as docker's cache ignores them), for the layer cache.
 */
export async function hashEntries(entries: { name: string; found: Found }[]): Promise<string> {
  const hash = createHash('sha256');
  for (const { name, found } of entries) {
    const { st, path } = found;
    hash.update(`${name}\0${st.mode}\0`);
    if (st.isSymbolicLink()) hash.update(`link:${await readlink(path)}\0`);
    else if (st.isFile()) {
      for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
      hash.update('\0');
    }
  }
  return hash.digest('hex');
}
