// `oci-archive:FILE`: an OCI image layout in a tar, as skopeo writes and reads it. Read by
// unpacking it into a scratch directory (docker-archive.ts's extractArchive), written by
// packing a scratch layout.

import { createReadStream, createWriteStream } from 'node:fs';
import { readdir, rename, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';

/** Writes every file under `dir` (paths relative to it) into the tar `file`, atomically. */
export async function packOciArchive(dir: string, file: string): Promise<void> {
  const pack = tar.pack();
  const tmp = `${file}.${process.pid}.tmp`;
  const written = pipeline(pack, createWriteStream(tmp));
  const add = async (rel: string): Promise<void> => {
    for (const entry of (await readdir(join(dir, rel), { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
      const name = rel ? `${rel}/${entry.name}` : entry.name;
      if (entry.isDirectory()) await add(name);
      else if (entry.isFile()) {
        const { size } = await stat(join(dir, name));
        await pipeline(createReadStream(join(dir, name)), pack.entry({ name, size, mode: 0o644, mtime: new Date(0) }));
      }
    }
  };
  try {
    await add('');
    pack.finalize();
    await written;
  } catch (err) {
    pack.destroy(err as Error);
    throw err;
  }
  await rename(tmp, file);
}
