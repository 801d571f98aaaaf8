// Warms the page cache's free memory before a large write. On this kind of VM (a
// balloon with free page reporting) memory that has been free for a few seconds goes
// back to the host, and the first write into it costs about 2 s of kernel time per GiB
// in page faults; memory freed just now does not. Which registry met which kind of
// memory depended on the order of the tests, so the large pushes swung between 200 and
// 500 MB/s. Writing and deleting as many bytes just before a measured push gives both
// registries the same, warm, memory (as on a long-running server, where new writes
// reuse reclaimed cache pages).

import { open, rm } from 'node:fs/promises';
import { join } from 'node:path';

const CHUNK = Buffer.alloc(1 << 20, 0x5a);

export async function warmPageCache(dir: string, bytes: number): Promise<void> {
  const path = join(dir, 'page-cache-warmup');
  const fh = await open(path, 'w');
  try {
    for (let written = 0; written < bytes; written += CHUNK.length) await fh.write(CHUNK);
  } finally {
    await fh.close();
  }
  await rm(path, { force: true });
}
