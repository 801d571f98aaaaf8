// The metadata queries behind the web UI on each driver (SQLite, and PostgreSQL when it
// is installed): a repository's summary, tags newest first with keyset paging and a
// filter, image sizes (an index with its children's, each blob once), the tags on a
// digest, a blob's repositories, the last collection and users' groups.

import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { MetadataStore, NewManifest } from '../storage/ports.js';
import { onEachMetadataDriver, type OpenMetadata } from './helpers/metadata-drivers.js';

const d = (c: string) => `sha256:${c.repeat(64).slice(0, 64)}`;
const IMAGE = 'application/vnd.oci.image.manifest.v1+json';
const INDEX = 'application/vnd.oci.image.index.v1+json';

function manifest(repository: string, digest: string, extra: Partial<NewManifest> = {}): NewManifest {
  return { repository, digest, mediaType: IMAGE, size: 100, artifactType: null, subject: null, annotations: null, blobs: [], children: [], tags: [], ...extra };
}

function browseQueries(name: string, open: OpenMetadata) {
  describe(`web UI queries on ${name}`, () => {
    let meta: MetadataStore;
    let close: () => Promise<void>;
    beforeAll(async () => {
      ({ meta, close } = await open());
      // Two images sharing layer b, and an index over both; pushed at known times.
      vi.useFakeTimers({ toFake: ['Date'] });
      try {
        for (const [blob, size] of [[d('a'), 1000], [d('b'), 20_000], [d('c'), 300]] as const) {
          await meta.addBlob({ repository: 'app/web', digest: blob, size });
        }
        vi.setSystemTime(1_000);
        await meta.putManifest(manifest('app/web', d('1'), { blobs: [{ digest: d('a'), kind: 'config' }, { digest: d('b'), kind: 'layer' }], tags: ['one', 'same'] }));
        vi.setSystemTime(2_000);
        await meta.putManifest(manifest('app/web', d('2'), { size: 110, blobs: [{ digest: d('c'), kind: 'config' }, { digest: d('b'), kind: 'layer' }], tags: ['two', 'also-two'] }));
        vi.setSystemTime(3_000);
        await meta.putManifest(manifest('app/web', d('9'), { mediaType: INDEX, size: 50, children: [d('1'), d('2')], tags: ['multi'] }));
        await meta.mountBlob('other/db', d('b'));
      } finally {
        vi.useRealTimers();
      }
    });
    afterAll(() => close?.());

    it('sums a repository and reads its tags newest first, page by page and filtered', async () => {
      expect(await meta.repositorySummary('app/web')).toEqual({ tags: 5, bytes: 1000 + 20_000 + 300 + 100 + 110 + 50, lastPush: 3_000 });
      expect(await meta.repositorySummary('no/such')).toBeUndefined();
      const all = await meta.tagsNewestFirst('app/web', undefined, '', 10);
      expect(all!.map((t) => t.name)).toEqual(['multi', 'also-two', 'two', 'one', 'same']);
      expect(all![0]).toEqual({ name: 'multi', digest: d('9'), mediaType: INDEX, updatedAt: 3_000 });
      const first = await meta.tagsNewestFirst('app/web', undefined, '', 2);
      const last = first!.at(-1)!;
      const rest = await meta.tagsNewestFirst('app/web', { time: last.updatedAt, name: last.name }, '', 10);
      expect(rest!.map((t) => t.name)).toEqual(['two', 'one', 'same']);
      expect((await meta.tagsNewestFirst('app/web', undefined, 'two', 10))!.map((t) => t.name)).toEqual(['also-two', 'two']);
      expect(await meta.tagsNewestFirst('no/such', undefined, '', 10)).toBeUndefined();
    });

    it('adds up an image, and an index with its children, each blob once', async () => {
      expect(await meta.imageSize('app/web', d('1'))).toBe(100 + 1000 + 20_000);
      expect(await meta.imageSize('app/web', d('9'))).toBe(50 + 100 + 110 + 1000 + 300 + 20_000);
    });

    it('names the tags on a digest, the repositories holding a blob, the last collection and groups', async () => {
      expect(await meta.tagsOf('app/web', d('1'))).toEqual(['one', 'same']);
      expect(await meta.repositoriesWithBlob(d('b'))).toEqual(['app/web', 'other/db']);
      expect(await meta.lastGcRun()).toBeUndefined();
      await meta.recordGcRun({ at: 5_000, freedBytes: 1234 });
      expect(await meta.lastGcRun()).toEqual({ at: 5_000, freedBytes: 1234 });
      await meta.addUser({ name: 'ann', passwordHash: 'x', admin: false, groups: ['a'] });
      expect(await meta.setUserGroups('ann', ['ci', 'ops'])).toBe(true);
      expect((await meta.getUser('ann'))!.groups).toEqual(['ci', 'ops']);
      expect(await meta.setUserGroups('nobody', ['ci'])).toBe(false);
    });
  });
}

onEachMetadataDriver(browseQueries);
