// `berth gc` that frees nothing because of the grace period says so, with how much it
// kept, and a run without the grace frees exactly that.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { berthOk } from './helpers/berth-cli.js';
import { pushImage, startTestServer, type TestServer } from './helpers/server.js';

describe('berth gc and the grace period', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
    const image = await pushImage(server.url, 'gc/recent', 'v1', 'grace');
    expect((await fetch(`${server.url}/v2/gc/recent/manifests/${image.digest}`, { method: 'DELETE' })).status).toBe(202);
  });
  afterAll(() => server?.destroy());

  it('says how many blobs the grace period kept, in a dry run and a real one', async () => {
    for (const dry of [['--dry-run'], []]) {
      const r = await berthOk(['gc', '--data', server.dataDir, ...dry]);
      expect(r.stdout).toContain(' 0 blobs (0 B freed)');
      // The config, two layers and the deleted manifest: pushed a moment ago.
      expect(r.stdout).toMatch(/\n4 blobs \([\d.]+ (B|KiB)\) are within the 1h grace period: kept in case a push in flight needs them; a later collection frees them \(--grace 0s for now\)\n$/);
    }
    const json = JSON.parse((await berthOk(['gc', '--data', server.dataDir, '--dry-run', '--json'])).stdout);
    expect(json.blobsInGrace).toBe(4);
  }, 60_000);

  it('frees them without the grace period, and then has nothing to say about it', async () => {
    const r = await berthOk(['gc', '--data', server.dataDir, '--grace', '0s']);
    expect(r.stdout).toContain(' 4 blobs (');
    expect(r.stdout).not.toContain('grace period');
  }, 60_000);
});
