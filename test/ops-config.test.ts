// The config file, environment and flags: one precedence (flags > env > file >
// defaults), errors that name the bad key and where it came from, --print-config with
// secrets hidden, and the example config of deploy/ being valid.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import { ConfigError, loadConfig } from '../src/config/config.js';
import { HIDDEN, printConfig } from '../src/config/print.js';

const root = join(import.meta.dirname, '..');
const bin = join(root, 'dist', 'src', 'cli', 'main.js');
let dir: string;

beforeAll(async () => {
  if (!existsSync(bin)) execFileSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: root });
  dir = await mkdtemp(join(tmpdir(), 'berth-config-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

async function file(name: string, yaml: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, yaml);
  return path;
}

function configError(run: () => unknown): ConfigError {
  try {
    run();
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('precedence', () => {
  it('defaults < file < environment < flags, key by key', async () => {
    const path = await file('layers.yaml', ['listen: 127.0.0.1:6001', 'data: /from/file', 'log: {level: warn, format: json}', 'readOnly: true', 'health: {minFreeBytes: 1GiB}'].join('\n'));
    const onlyFile = loadConfig({ flags: { config: path }, env: {} });
    expect(onlyFile).toMatchObject({ listen: '127.0.0.1:6001', data: '/from/file', readOnly: true, log: { level: 'warn', format: 'json' } });
    expect(onlyFile.health.minFreeBytes).toBe(1024 ** 3);
    expect(onlyFile.metrics).toEqual({ enabled: true, path: '/metrics' }); // defaults fill the rest

    const withEnv = loadConfig({ flags: {}, env: { BERTH_CONFIG: path, BERTH_DATA: '/from/env', BERTH_LOG_LEVEL: 'debug', BERTH_READ_ONLY: '0' } });
    expect(withEnv).toMatchObject({ listen: '127.0.0.1:6001', data: '/from/env', readOnly: false, log: { level: 'debug', format: 'json' } });

    const withFlags = loadConfig({ flags: { config: path, data: '/from/flag', logLevel: 'error' }, env: { BERTH_DATA: '/from/env', BERTH_LISTEN: '127.0.0.1:6002' } });
    expect(withFlags).toMatchObject({ listen: '127.0.0.1:6002', data: '/from/flag', log: { level: 'error', format: 'json' } });
  });

  it('with nothing given uses the documented defaults', () => {
    const config = loadConfig({ flags: {}, env: {} });
    expect(config).toMatchObject({ listen: '0.0.0.0:5000', data: 'data', readOnly: false, log: { level: 'info', format: 'auto' }, auth: { mode: 'none' } });
    expect(config.tls).toBeUndefined();
  });

  it('the auth section comes from the config file, --auth-config and the auth flags', async () => {
    const path = await file('auth.yaml', 'auth:\n  mode: token\n  service: from-file\n  tokenTtlSeconds: 600\n');
    const authFile = await file('auth-only.yaml', 'service: from-auth-config\n');
    const config = loadConfig({ flags: { config: path, authConfig: authFile, tokenTtl: '900' }, env: { BERTH_ANONYMOUS_PULL: '1' } });
    expect(config.auth).toMatchObject({ mode: 'token', service: 'from-auth-config', tokenTtlSeconds: 900, anonymousPull: true });
  });

  it('durations and sizes take units, webhook endpoints get their defaults', async () => {
    const path = await file('events.yaml', 'events:\n  backoff: 2s\n  endpoints:\n    - name: ci\n      url: http://127.0.0.1:9/hook\n      timeout: 250ms\n      actions: [push]\n');
    const { events } = loadConfig({ flags: { config: path }, env: {} });
    expect(events.backoff).toBe(2000);
    expect(events.endpoints).toEqual([{ name: 'ci', url: 'http://127.0.0.1:9/hook', headers: {}, timeout: 250, actions: ['push'], ignoreMediaTypes: [] }]);
  });
});

describe('a bad config names its bad key', () => {
  it('an unknown key, with a suggestion', async () => {
    const path = await file('typo.yaml', 'metrics:\n  lisen: 127.0.0.1:9100\n');
    const err = configError(() => loadConfig({ flags: { config: path }, env: {} }));
    expect(err.key).toBe('metrics.lisen');
    expect(err.message).toContain('config key "metrics.lisen"');
    expect(err.message).toContain(`(from ${path})`);
    expect(err.message).toContain('did you mean "listen"');
  });

  it('a bad value deep in a list', async () => {
    const path = await file('badurl.yaml', 'events:\n  endpoints:\n    - name: a\n      url: http://127.0.0.1:9/a\n    - name: b\n      url: ftp://example.com/\n');
    const err = configError(() => loadConfig({ flags: { config: path }, env: {} }));
    expect(err.key).toBe('events.endpoints[1].url');
    expect(err.message).toMatch(/expected an http\(s\) URL/);
  });

  it('a bad environment variable or flag is named as such', () => {
    const env = configError(() => loadConfig({ flags: {}, env: { BERTH_READ_ONLY: 'maybe' } }));
    expect(env.message).toBe('config key "readOnly" (from BERTH_READ_ONLY): expected true or false, got "maybe"');
    const flag = configError(() => loadConfig({ flags: { logLevel: 'loud' }, env: {} }));
    expect(flag.message).toContain('config key "log.level" (from --log-level)');
    const size = configError(() => loadConfig({ flags: { minFreeDisk: 'lots' }, env: {} }));
    expect(size.key).toBe('health.minFreeBytes');
  });

  it('half a TLS pair, a missing required key and a bad auth mode', async () => {
    expect(configError(() => loadConfig({ flags: { tlsCert: '/x.crt' }, env: {} })).key).toBe('tls.key');
    const noUrl = await file('nourl.yaml', 'events:\n  endpoints:\n    - name: a\n');
    expect(configError(() => loadConfig({ flags: { config: noUrl }, env: {} })).key).toBe('events.endpoints[0].url');
    const err = configError(() => loadConfig({ flags: { auth: 'tokn' }, env: {} }));
    expect(err.key).toBe('auth');
    expect(err.message).toContain('tokn');
  });

  it('berth serve stops before listening, with the key in its message', async () => {
    const path = await file('serve-bad.yaml', `data: ${dir}/data\nlog:\n  levl: debug\n`);
    const run = promisify(execFile)(process.execPath, [bin, 'serve', '--config', path, '--listen', '127.0.0.1:0']);
    const err = (await run.then(() => undefined, (e: unknown) => e)) as { code: number; stderr: string } | undefined;
    expect(err?.code).toBe(1);
    expect(err?.stderr).toContain('config key "log.levl"');
    expect(err?.stderr).toContain('did you mean "level"');
  });
});

describe('--print-config', () => {
  it('shows the merged settings with secrets hidden, as YAML the loader takes back', async () => {
    const path = await file(
      'secrets.yaml',
      [
        'events:',
        '  endpoints:',
        '    - name: ci',
        '      url: https://hook:s3cret@ci.example.com/hook?token=abc123',
        '      headers: {Authorization: Bearer very-secret}',
      ].join('\n'),
    );
    const { stdout } = await promisify(execFile)(process.execPath, [bin, 'serve', '--config', path, '--listen', '127.0.0.1:7777', '--print-config'], {
      env: { ...process.env, BERTH_DATA: '/srv/berth' },
    });
    for (const secret of ['s3cret', 'very-secret', 'abc123']) expect(stdout).not.toContain(secret);
    const printed = parse(stdout);
    expect(printed).toMatchObject({ listen: '127.0.0.1:7777', data: '/srv/berth', readOnly: false });
    expect(printed.events.endpoints[0].headers).toEqual({ Authorization: HIDDEN });
    expect(printed.events.endpoints[0].url).toBe('https://hook:***@ci.example.com/hook?token=***');
    // What it prints is itself a valid config file.
    const again = loadConfig({ flags: { config: await file('printed.yaml', stdout) }, env: {} });
    expect(again.listen).toBe('127.0.0.1:7777');
    expect(printConfig(again)).toBe(stdout);
  });

  it('takes --grace as berth gc does, and --gc-grace, its earlier name', async () => {
    const grace = async (...flags: string[]) =>
      parse((await promisify(execFile)(process.execPath, [bin, 'serve', ...flags, '--print-config'], { env: { ...process.env, BERTH_DATA: '/srv/berth' } })).stdout).gc.grace;
    expect(await grace('--grace', '2h')).toBe(2 * 3_600_000);
    expect(await grace('--gc-grace', '3h')).toBe(3 * 3_600_000);
  });
});
