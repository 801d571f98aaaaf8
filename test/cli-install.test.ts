// The README's set-up lines: `npm start -- FLAGS` passes the flags to `berth serve`, and
// `npm link` puts `berth` on the PATH (here into a throw-away npm prefix, not the machine's).

import { execFile } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from './helpers/images.js';

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, '..');

describe('installing and starting as the README says', () => {
  let work: string;
  beforeAll(async () => {
    work = await tempDir('berth-install-');
  });
  afterAll(() => rm(work, { recursive: true, force: true }));

  it('npm start -- --listen ... --data ... reaches berth serve', async () => {
    const { stdout } = await run('npm', ['start', '--silent', '--', '--listen', '127.0.0.1:5055', '--data', '/srv/berth', '--print-config'], { cwd: ROOT });
    expect(stdout).toContain('listen: 127.0.0.1:5055\ndata: /srv/berth\n');
  }, 60_000);

  it('npm link puts berth on the PATH, usable from any directory', async () => {
    const prefix = join(work, 'prefix');
    await run('npm', ['link', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: ROOT, env: { ...process.env, npm_config_prefix: prefix } });
    const { stdout } = await run('berth', ['--version'], { cwd: work, env: { ...process.env, PATH: `${join(prefix, 'bin')}:${process.env.PATH}` } });
    expect(stdout.trim()).toBe('0.1.0');
  }, 60_000);
});
