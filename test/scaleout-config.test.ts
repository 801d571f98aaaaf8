// The scale-out configuration keys (database.url, storage.s3.*): from the file and from
// the environment, their defaults and checks, secrets hidden by --print-config, and the
// commented example of deploy/berth.yaml valid once uncommented.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { loadConfig } from '../src/config/config.js';
import { HIDDEN, printConfig } from '../src/config/print.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'berth-scaleout-config-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

async function fromYaml(yaml: string, env: NodeJS.ProcessEnv = {}) {
  const path = join(dir, `c${Math.random()}.yaml`);
  await writeFile(path, yaml);
  return loadConfig({ flags: { config: path }, env });
}

describe('scale-out configuration', () => {
  it('keeps metadata and blobs under data by default', () => {
    const config = loadConfig({ env: {} });
    expect(config.database).toBeUndefined();
    expect(config.storage).toEqual({});
  });

  it('reads database.url and storage.s3 from the file, with defaults for what is left out', async () => {
    const config = await fromYaml('database:\n  url: postgres://berth@db:5432/berth\nstorage:\n  s3:\n    bucket: berth\n');
    expect(config.database).toEqual({ url: 'postgres://berth@db:5432/berth' });
    expect(config.storage.s3).toEqual({ bucket: 'berth', region: 'us-east-1', forcePathStyle: false, redirect: false });
  });

  it('takes every key from the environment too, over the file', async () => {
    const config = await fromYaml('storage:\n  s3:\n    bucket: from-file\n', {
      BERTH_DATABASE_URL: 'postgresql://u@h/d',
      BERTH_S3_ENDPOINT: 'http://127.0.0.1:7480',
      BERTH_S3_REGION: 'eu-west-1',
      BERTH_S3_BUCKET: 'from-env',
      BERTH_S3_PREFIX: 'registry/',
      BERTH_S3_ACCESS_KEY: 'AK',
      BERTH_S3_SECRET_KEY: 'SK',
      BERTH_S3_FORCE_PATH_STYLE: 'true',
      BERTH_S3_REDIRECT: 'yes',
    });
    expect(config.database).toEqual({ url: 'postgresql://u@h/d' });
    expect(config.storage.s3).toEqual({
      endpoint: 'http://127.0.0.1:7480', region: 'eu-west-1', bucket: 'from-env', prefix: 'registry/',
      accessKey: 'AK', secretKey: 'SK', forcePathStyle: true, redirect: true,
    });
  });

  it('names the key that is wrong', async () => {
    await expect(fromYaml('database:\n  url: mysql://x:secret@h/d\n')).rejects.toThrow(/config key "database.url".*expected a postgres:\/\/ URL, got "mysql:\/\/x:\*\*\*@h\/d"/);
    await expect(fromYaml('storage:\n  s3:\n    region: us-east-1\n')).rejects.toThrow('config key "storage.s3.bucket"');
    await expect(fromYaml('storage:\n  s3:\n    bucket: b\n    accessKey: AK\n')).rejects.toThrow('config key "storage.s3.secretKey"');
    await expect(fromYaml('storage:\n  s3:\n    bucket: b\n    endpoint: s3.example.com\n')).rejects.toThrow('config key "storage.s3.endpoint"');
    await expect(fromYaml('storage:\n  s3:\n    bucket: b\n    redirect: sometimes\n')).rejects.toThrow('config key "storage.s3.redirect"');
  });

  it('hides the database password and the S3 secret key in --print-config', async () => {
    const config = await fromYaml('database:\n  url: postgres://berth:hunter2@db/berth\nstorage:\n  s3:\n    bucket: b\n    accessKey: AK\n    secretKey: SK\n');
    const printed = printConfig(config);
    expect(printed).not.toContain('hunter2');
    expect(printed).not.toContain('SK');
    const shown = parse(printed) as { database: { url: string }; storage: { s3: { secretKey: string; accessKey: string } } };
    expect(shown.database.url).toBe('postgres://berth:***@db/berth');
    expect(shown.storage.s3.secretKey).toBe(HIDDEN);
  });

  it('accepts the scale-out example of deploy/berth.yaml once uncommented', async () => {
    const text = await readFile(join(import.meta.dirname, '..', 'deploy', 'berth.yaml'), 'utf8');
    const start = text.indexOf('# database:');
    const block = text.slice(start, text.indexOf('\n\n', start));
    const config = await fromYaml(block.replace(/^# /gm, ''));
    expect(config.database?.url).toMatch(/^postgres:\/\//);
    expect(config.storage.s3).toMatchObject({ endpoint: 'https://s3.example.com', bucket: 'berth', prefix: 'registry/', forcePathStyle: true, redirect: false });
  });
});
