// An interrupted push of a large blob resumes in a later run from the registry's upload
// status: the first run is cut off (the network goes down) after some chunks, the second
// asks the registry how much of the session it holds and sends only the rest.

import { randomBytes } from 'node:crypto';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { push, type ProgressEvent } from '../src/client/index.js';
import { buildBusyboxImage, e2eTools, tempDir, type BuiltManifestImage } from './helpers/images.js';
import { startRecordingProxy, type RecordingProxy } from './helpers/reference-registry.js';
import { startTestServer, type TestServer } from './helpers/server.js';

const CHUNK = 256 * 1024;

describe.skipIf(!e2eTools('umoci', 'busybox'))('push resumed in a later run', () => {
  let server: TestServer;
  let proxy: RecordingProxy;
  let work: string;
  let image: BuiltManifestImage;
  beforeAll(async () => {
    work = await tempDir('berth-push-resume-');
    process.env.BERTH_UPLOAD_STATE_DIR = join(work, 'state');
    image = await buildBusyboxImage(join(work, 'layout'), { extraFiles: { 'big.bin': randomBytes(2 * 1024 * 1024 + 123) } });
    server = await startTestServer();
    proxy = await startRecordingProxy(server.url);
  });
  afterAll(async () => {
    delete process.env.BERTH_UPLOAD_STATE_DIR;
    await proxy?.close();
    await server?.destroy();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('continues the large blob where the registry has it, not from zero', async () => {
    const big = image.manifest.layers.at(-1)!;
    const ref = `${proxy.host}/resume/push:1`;
    const opts = { upload: { monolithicMaxBytes: CHUNK, chunkBytes: CHUNK }, concurrency: 1 };
    let cut = false;
    await expect(
      push(image.layout, ref, {
        ...opts,
        retry: { attempts: 1 },
        onProgress: (e) => {
          if (!cut && e.type === 'blob-progress' && e.digest === big.digest && e.bytes >= 4 * CHUNK) {
            cut = true;
            proxy.setDown(true);
          }
        },
      }),
    ).rejects.toThrow();
    proxy.setDown(false);
    expect(await readdir(join(work, 'state'))).toHaveLength(1);

    const before = proxy.requests.length;
    const events: ProgressEvent[] = [];
    const result = await push(image.layout, ref, { ...opts, onProgress: (e) => events.push(e) });
    expect(result.digest).toBe(image.digest);
    const start = events.find((e) => e.type === 'blob-start' && e.digest === big.digest) as Extract<ProgressEvent, { type: 'blob-start' }>;
    expect(start.resumeAt).toBeGreaterThanOrEqual(3 * CHUNK);
    const second = proxy.requests.slice(before);
    // The upload status of the saved session, then only the chunks that were missing.
    expect(second.some((r) => /^GET \/v2\/resume\/push\/blobs\/uploads\/[^?]+/.test(r))).toBe(true);
    const chunks = Math.ceil(big.size / CHUNK);
    expect(second.filter((r) => r.startsWith('PATCH')).length).toBeLessThanOrEqual(chunks - 3);
    expect(await readdir(join(work, 'state'))).toEqual([]);
    // The registry has the blob, whole and verified.
    const res = await fetch(`${server.url}/v2/resume/push/blobs/${big.digest}`);
    expect(Buffer.from(await res.arrayBuffer()).length).toBe(big.size);
  }, 60_000);
});
