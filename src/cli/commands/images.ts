// `berth images`: the images of the local store (`--root`), pulled by `berth run`.

import type { Command } from 'commander';
import { listImages } from '../../runtime/images.js';
import { DEFAULT_ROOT, RuntimeStore } from '../../runtime/store.js';
import { formatBytes } from '../sizes.js';

/** Prints rows under a header, columns padded to their widest cell. */
export function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  for (const row of [header, ...rows]) {
    process.stdout.write(`${row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join('   ')}\n`);
  }
}

/** The 12 hex digits docker shows of an id. */
function shortId(digest: string): string {
  return digest.slice(digest.indexOf(':') + 1, digest.indexOf(':') + 13);
}

export function register(program: Command): void {
  program
    .command('images')
    .description('list the images in the local store')
    .option('--root <dir>', 'local image store and containers', DEFAULT_ROOT)
    .option('-q, --quiet', 'print only the image ids')
    .option('--json', 'print JSON')
    .action(async (flags: { root: string; json?: boolean; quiet?: boolean }) => {
      const images = await listImages(new RuntimeStore(flags.root));
      if (flags.json) {
        process.stdout.write(`${JSON.stringify(images, null, 2)}\n`);
        return;
      }
      if (flags.quiet) {
        // One line per image id, as docker images -q (two names of one image: one id).
        for (const id of new Set(images.map((i) => shortId(i.id)))) process.stdout.write(`${id}\n`);
        return;
      }
      printTable(
        ['IMAGE', 'ID', 'CREATED', 'SIZE'],
        images.map((i) => [i.name, shortId(i.id), i.created?.replace('T', ' ').slice(0, 19) ?? '', formatBytes(i.size)]),
      );
    });
}
