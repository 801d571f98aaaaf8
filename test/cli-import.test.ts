// `berth import --from-distribution DIR`: a real reference registry (Debian's
// docker-registry) is filled by skopeo with an image and a multi-platform index, then its
// storage directory is imported into Berth, which serves the same manifests, digests and
// tags to skopeo afterwards. A dry run lists the same and stores nothing.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { buildBusyboxImage, buildMultiPlatformIndex, e2eTools, skopeo, tempDir, type BuiltIndex, type BuiltManifestImage } from './helpers/images.js';
import { startReferenceRegistry, type ReferenceRegistry } from './helpers/reference-registry.js';
import { startTestServer } from './helpers/server.js';
import type { ImportReport } from '../src/cli/commands/import.js';

const MAIN = fileURLToPath(new URL('../dist/src/cli/main.js', import.meta.url));
const run = promisify(execFile);
const berth = async (...args: string[]) => (await run(process.execPath, [MAIN, ...args], { env: { ...process.env, BERTH_CONFIG: '' } })).stdout;

describe.skipIf(!e2eTools('docker-registry', 'skopeo', 'umoci', 'busybox'))('berth import --from-distribution', () => {
  let reference: ReferenceRegistry;
  let work: string;
  let img: BuiltManifestImage;
  let index: BuiltIndex;

  beforeAll(async () => {
    work = await tempDir('berth-import-');
    reference = await startReferenceRegistry();
    img = await buildBusyboxImage(join(work, 'img'));
    index = await buildMultiPlatformIndex(join(work, 'index'));
    const to = (ref: string) => `docker://${reference.host}/${ref}`;
    await skopeo('copy', '--quiet', '--dest-tls-verify=false', img.skopeoRef, to('lib/busybox:v1'));
    await skopeo('copy', '--quiet', '--dest-tls-verify=false', img.skopeoRef, to('lib/busybox:latest'));
    await skopeo('copy', '--quiet', '--all', '--dest-tls-verify=false', index.skopeoRef, to('team/tools/multi:1.0'));
  });
  afterAll(async () => {
    await reference?.close();
    await rm(work, { recursive: true, force: true });
  });

  it('lists what a dry run would import and stores nothing', async () => {
    const data = join(work, 'dry');
    const report = JSON.parse(await berth('import', '--from-distribution', reference.root, '--dry-run', '--data', data, '--json')) as ImportReport;
    expect(report.dryRun).toBe(true);
    expect(report.skipped).toEqual([]);
    expect(report.repositories.map((r) => [r.name, r.manifests, r.tags])).toEqual([
      ['lib/busybox', 1, 2],
      ['team/tools/multi', 1 + index.children.length, 1],
    ]);
    expect(report.repositories[0]!.blobs).toBe(1 + img.manifest.layers.length);
    expect(existsSync(data)).toBe(false);
    expect(await berth('import', '--from-distribution', reference.root, '--dry-run', '--data', data)).toMatch(/^would import lib\/busybox: 2 blobs/m);
  });

  it('imports repositories, blobs, manifests and tags that skopeo then pulls unchanged, and a second run changes nothing', async () => {
    const data = join(work, 'data');
    const first = await berth('import', '--from-distribution', reference.root, '--data', data);
    expect(first).toMatch(/^imported 2 repositories \(.+\), skipped 0$/m);
    const again = JSON.parse(await berth('import', '--from-distribution', reference.root, '--data', data, '--json')) as ImportReport;
    expect(again.skipped).toEqual([]);

    const srv = await startTestServer({ data });
    try {
      const host = srv.url.slice('http://'.length);
      const tags = (await (await fetch(`${srv.url}/v2/lib/busybox/tags/list`)).json()) as { tags: string[] };
      expect(tags.tags).toEqual(['latest', 'v1']);
      const out = join(work, 'out');
      await skopeo('copy', '--quiet', '--src-tls-verify=false', `docker://${host}/lib/busybox:v1`, `oci:${out}:v1`);
      const raw = await skopeo('inspect', '--raw', `oci:${out}:v1`);
      expect(Buffer.from(raw).equals(img.raw)).toBe(true);
      const multi = await fetch(`${srv.url}/v2/team/tools/multi/manifests/1.0`, { headers: { Accept: 'application/vnd.oci.image.index.v1+json' } });
      expect(multi.headers.get('docker-content-digest')).toBe(index.digest);
      await skopeo('copy', '--quiet', '--all', '--src-tls-verify=false', `docker://${host}/team/tools/multi:1.0`, `oci:${join(work, 'multi-out')}:1.0`);
    } finally {
      await srv.destroy();
    }
  });

  it('says clearly when the directory is not a reference registry', async () => {
    await expect(berth('import', '--from-distribution', work, '--data', join(work, 'x'))).rejects.toThrow(/is not a reference registry's storage: no docker\/registry\/v2\/repositories under it/);
  });
});
