// The build cache: for each step, keyed by a hash of the previous step's key, the
// instruction, the stage's config and variables and what the step reads (file contents
// for COPY/ADD), the layer it made and when. A hit whose layer blob is gone from the
// store (`berth rmi`/`prune`) is a miss. One small JSON file per step under
// `<root>/build-cache/`, written then renamed.

import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { LayerBlob } from './layer.js';

export interface CacheEntry {
  created: string;
  layer?: LayerBlob;
}

export function stepKey(parent: string, ...inputs: string[]): string {
  const hash = createHash('sha256').update(parent);
  for (const input of inputs) hash.update('\0').update(input);
  return hash.digest('hex');
}

export class BuildCache {
  private readonly dir: string;

  constructor(root: string) {
    this.dir = join(root, 'build-cache');
  }

  async get(key: string): Promise<CacheEntry | undefined> {
    try {
      return JSON.parse(await readFile(join(this.dir, `${key}.json`), 'utf8')) as CacheEntry;
    } catch {
      return undefined; // missing or unreadable: a miss
    }
  }

  async put(key: string, entry: CacheEntry): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const tmp = join(this.dir, `.${key}.${randomBytes(4).toString('hex')}`);
    await writeFile(tmp, JSON.stringify(entry));
    await rename(tmp, join(this.dir, `${key}.json`));
  }
}
