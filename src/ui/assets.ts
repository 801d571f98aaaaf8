// The UI's static files (src/ui/assets: one stylesheet, one script, one icon), read once
// at start-up and served under names that carry their content hash, so a browser may
// keep them for a year and a new release is fetched at once.

import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const TYPES: Record<string, string> = {
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.svg': 'image/svg+xml',
};

export const ASSET_PREFIX = '/-/static/';

export interface Asset {
  /** `ui.3f2a9c1d0e4b.css`: the name with the first 12 hex digits of its sha256. */
  file: string;
  type: string;
  body: Buffer;
}

/** src/ui/assets, both from the sources (vitest) and from dist/src/ui (the build, the image). */
function assetsDir(): string {
  const here = fileURLToPath(new URL('.', import.meta.url));
  for (const dir of [join(here, 'assets'), join(here, '..', '..', '..', 'src', 'ui', 'assets')]) {
    try {
      readdirSync(dir);
      return dir;
    } catch {
      // try the next layout
    }
  }
  throw new Error('the web UI\'s assets (src/ui/assets) are missing');
}

export interface Assets {
  /** Hashed URL of an asset by its plain name (`ui.css`). */
  url(name: string): string;
  /** The asset served at a hashed file name, if any. */
  byFile(file: string): Asset | undefined;
}

export function loadAssets(): Assets {
  const dir = assetsDir();
  const byName = new Map<string, Asset>();
  const byFile = new Map<string, Asset>();
  for (const name of readdirSync(dir)) {
    const ext = extname(name);
    const type = TYPES[ext];
    if (!type) continue;
    const body = readFileSync(join(dir, name));
    const hash = createHash('sha256').update(body).digest('hex').slice(0, 12);
    const asset = { file: `${name.slice(0, -ext.length)}.${hash}${ext}`, type, body };
    byName.set(name, asset);
    byFile.set(asset.file, asset);
  }
  return {
    url(name) {
      const asset = byName.get(name);
      if (!asset) throw new Error(`no UI asset ${name}`);
      return `${ASSET_PREFIX}${asset.file}`;
    },
    byFile: (file) => byFile.get(file),
  };
}
