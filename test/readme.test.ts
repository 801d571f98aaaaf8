// The README's shell examples run as written. Many need a registry with images on it,
// a network or root, so only the blocks marked for it run here. The convention, for
// everyone who adds to the README: put the comment
//
//   <!-- readme-test: run -->
//
// on the line before a ```sh block (a blank line between is allowed) when the block
// runs verbatim in the checkout, after `npm install` and the build, with no network and
// no service started beforehand. The block runs in `bash -euo pipefail` from the
// repository's root with `npx berth` available and must exit 0 within a minute. It may
// write under /tmp; it must clean up anything it starts. An unknown marker fails the
// test, so a typo does not silently skip a block.

import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..');
const MARKER = /^<!--\s*readme-test:\s*(\S+)\s*-->$/;

interface Block {
  line: number;
  code: string;
}

/** The ```sh blocks under a `<!-- readme-test: run -->` line. */
function markedBlocks(markdown: string): Block[] {
  const lines = markdown.split('\n');
  const blocks: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const m = MARKER.exec(lines[i]!.trim());
    if (!m) continue;
    if (m[1] !== 'run') throw new Error(`README.md:${i + 1}: unknown readme-test marker "${m[1]}" (the only one is "run")`);
    let j = i + 1;
    while (j < lines.length && lines[j]!.trim() === '') j++;
    if (!/^```(sh|bash|shell)\s*$/.test(lines[j] ?? '')) throw new Error(`README.md:${i + 1}: the readme-test marker is not followed by a sh block`);
    const end = lines.indexOf('```', j + 1);
    if (end < 0) throw new Error(`README.md:${j + 1}: the block never ends`);
    blocks.push({ line: j + 1, code: lines.slice(j + 1, end).join('\n') });
  }
  return blocks;
}

describe('README shell blocks', () => {
  const blocks = markedBlocks(readFileSync(join(ROOT, 'README.md'), 'utf8'));

  it('has blocks marked to run', () => {
    expect(blocks.length).toBeGreaterThan(0);
  });

  it('finds blocks by their marker only', () => {
    const md = ['<!-- readme-test: run -->', '', '```sh', 'echo one', '```', '```sh', 'echo not marked', '```'].join('\n');
    expect(markedBlocks(md)).toEqual([{ line: 3, code: 'echo one' }]);
    expect(() => markedBlocks('<!-- readme-test: rnu -->\n```sh\nx\n```')).toThrow(/unknown readme-test marker "rnu"/);
  });

  for (const block of blocks) {
    it(`runs the block at README.md:${block.line}`, async () => {
      const result = await new Promise<{ code: number; output: string }>((resolve) => {
        execFile('bash', ['-euo', 'pipefail', '-c', block.code], { cwd: ROOT, timeout: 60_000 }, (err, stdout, stderr) =>
          resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, output: `${stdout}${stderr}` }),
        );
      });
      expect(result.code, `README.md:${block.line} failed:\n${block.code}\n---\n${result.output}`).toBe(0);
    }, 70_000);
  }
});
