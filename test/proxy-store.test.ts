// The pull-through cache's records on each metadata driver (SQLite, and PostgreSQL when
// it is installed): pull times, a cache's size, its images least recently pulled first,
// and eviction that keeps what another repository links.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MetadataStore, NewManifest } from '../storage/ports.js';
import { onEachMetadataDriver, type OpenMetadata } from './helpers/metadata-drivers.js';

const d = (c: string) => `sha256:${c.repeat(64).slice(0, 64)}`;

function manifest(repository: string, digest: string, extra: Partial<NewManifest> = {}): NewManifest {
  return { repository, digest, mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 100, artifactType: null, subject: null, annotations: null, blobs: [], children: [], tags: [], ...extra };
}

function cacheRecords(name: string, open: OpenMetadata) {
  describe(`pull-through cache records on ${name}`, () => {
    let meta: MetadataStore;
    let close: () => Promise<void>;
    beforeAll(async () => {
      ({ meta, close } = await open());
    });
    afterAll(() => close?.());

    it('records pulls, measures the cache and lists its images least recently pulled first', async () => {
      // Cached images are stored before their blobs (the cache fetches those later).
      await meta.putManifest(manifest('hub.example/a', d('1'), { blobs: [{ digest: d('b'), kind: 'layer' }], tags: ['1'], referencesFetchedLater: true }));
      await meta.putManifest(manifest('hub.example/b', d('2'), { tags: ['1'], referencesFetchedLater: true }));
      await meta.putManifest(manifest('local/c', d('3'), { tags: ['1'] }));
      await meta.addBlob({ repository: 'hub.example/a', digest: d('b'), size: 1000 });
      expect(await meta.cacheSize!('hub.example')).toBe(1200);
      await meta.recordPulls!([['hub.example/a', d('1'), 10], ['hub.example/b', d('2'), 20], ['hub.example/a', d('1'), 5]]);
      expect((await meta.cachedImages!('hub.example')).map((i) => [i.repository, i.pulledAt])).toEqual([['hub.example/a', 10], ['hub.example/b', 20]]);
      // A prefix is a whole name component: hub.example2/... is another cache.
      expect(await meta.cachedImages!('hub.exampl')).toEqual([]);
    });

    it('evicts an image with its tags and links, keeping a blob another repository links', async () => {
      await meta.mountBlob('local/c', d('b'));
      await meta.evictImage!('hub.example/a', d('1'));
      expect(await meta.manifestByTag('hub.example/a', '1')).toBeUndefined();
      expect(await meta.blobInRepository('hub.example/a', d('b'))).toBeUndefined();
      expect(await meta.blobInRepository('local/c', d('b'))).toBe(1000);
      expect(await meta.cacheSize!('hub.example')).toBe(100);
      expect((await meta.cachedImages!('hub.example')).map((i) => i.repository)).toEqual(['hub.example/b']);
    });
  });
}

onEachMetadataDriver(cacheRecords);
