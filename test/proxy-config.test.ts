// The `proxy:` list of the configuration (src/proxy/config.ts): the example,
// defaults, secrets from a file or an environment variable, hidden by --print-config,
// and mistakes that name the key.

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config/config.js';
import { printConfig } from '../src/config/print.js';
import { upstreamCredentials } from '../src/proxy/config.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'berth-proxy-config-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

async function load(yaml: string, env: NodeJS.ProcessEnv = {}) {
  const path = join(dir, `c${Math.random()}.yaml`);
  await writeFile(path, yaml);
  return loadConfig({ flags: { config: path }, env });
}

describe('proxy configuration', () => {
  it('reads the upstreams as the issue shows them, with defaults', async () => {
    const config = await load(`
proxy:
  - prefix: docker.io
    url: https://registry-1.docker.io
    username: alice
    password: s3cret-hub
    tagTtl: 1h
    maxBytes: 50GiB
    idleFor: 30d
  - prefix: ghcr.io
    url: https://ghcr.io
`);
    expect(config.proxy).toEqual([
      { prefix: 'docker.io', url: 'https://registry-1.docker.io', username: 'alice', password: 's3cret-hub', tagTtl: 3_600_000, maxBytes: 50 * 1024 ** 3, idleFor: 30 * 86_400_000 },
      { prefix: 'ghcr.io', url: 'https://ghcr.io', tagTtl: 3_600_000 },
    ]);
    expect(upstreamCredentials(config.proxy[0]!)).toEqual({ username: 'alice', password: 's3cret-hub' });
    expect(upstreamCredentials(config.proxy[1]!)).toBeUndefined();
    expect((await load('')).proxy).toEqual([]);
  });

  it('takes the password from a file or an environment variable, and --print-config shows none', async () => {
    const secret = join(dir, 'token');
    await writeFile(secret, 'from-a-file\n');
    const config = await load(`
proxy:
  - {prefix: a.example, url: https://a.example, username: u, passwordFile: ${secret}}
  - {prefix: b.example, url: https://b.example, username: u, passwordEnv: B_TOKEN}
  - {prefix: c.example, url: https://c.example, username: u, password: inline-secret}
`);
    expect(upstreamCredentials(config.proxy[0]!)).toEqual({ username: 'u', password: 'from-a-file' });
    expect(upstreamCredentials(config.proxy[1]!, { B_TOKEN: 'from-the-env' })).toEqual({ username: 'u', password: 'from-the-env' });
    expect(() => upstreamCredentials(config.proxy[1]!, {})).toThrow(/B_TOKEN \(passwordEnv\) is not set/);
    const printed = printConfig(config);
    expect(printed).not.toContain('inline-secret');
    expect(printed).toContain('prefix: c.example');
    expect(printed).toMatch(/password: <hidden>/);
  });

  it('names the key of a mistake', async () => {
    const cases: [string, RegExp][] = [
      ['proxy:\n  - {prefix: docker.io}', /"proxy\[0\]\.url".*is required/],
      ['proxy:\n  - {prefix: docker.io, url: ftp://x}', /"proxy\[0\]\.url".*http\(s\) URL/],
      ['proxy:\n  - {prefix: docker.io, url: "https://u:p@x"}', /"proxy\[0\]\.url".*not in the URL/],
      ['proxy:\n  - {prefix: Docker.IO, url: https://x}', /"proxy\[0\]\.prefix".*repository name prefix/],
      ['proxy:\n  - {prefix: docker.io, url: https://x, tagTTL: 1h}', /"proxy\[0\]\.tagTTL".*unknown key \(did you mean "tagTtl"\?\)/],
      ['proxy:\n  - {prefix: docker.io, url: https://x, tagTtl: soon}', /"proxy\[0\]\.tagTtl".*duration/],
      ['proxy:\n  - {prefix: docker.io, url: https://x, password: p}', /"proxy\[0\]\.username".*required with a password/],
      ['proxy:\n  - {prefix: docker.io, url: https://x, username: u, password: p, passwordEnv: P}', /give one of password, passwordFile and passwordEnv/],
      ['proxy:\n  - {prefix: docker.io, url: https://x}\n  - {prefix: docker.io/library, url: https://y}', /"proxy\[1\]\.prefix".*overlaps/],
    ];
    for (const [yaml, message] of cases) {
      const err = await load(yaml).then(() => undefined, (e: unknown) => e);
      expect(err, yaml).toBeInstanceOf(ConfigError);
      expect((err as Error).message, yaml).toMatch(message);
    }
  });
});
