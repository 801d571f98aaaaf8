// Scrub: re-hashes every blob file and checks the metadata against the files. Corrupt
// files are quarantined at once (serving them would hand clients bad bytes); other
// findings are reported, and fixed with `repair`: rows whose file is gone or corrupt
// are forgotten (clients then push the blob again), files without rows are removed.

import type { FsBlobStore } from '../../storage/blobstore.js';
import { InspectStore, type BrokenManifest } from '../../storage/inspect.js';
import type { Db } from '../../storage/db.js';
import { parseDigest } from './names.js';

export interface ScrubReport {
  checked: number;
  bytesChecked: number;
  corrupted: { digest: string; quarantinedTo: string }[];
  missingFiles: string[];
  wrongSize: string[];
  orphanFiles: string[];
  brokenManifests: BrokenManifest[];
  danglingTags: { repository: string; tag: string }[];
  repaired: boolean;
}

export async function scrub(db: Db, store: FsBlobStore, options: { repair?: boolean } = {}): Promise<ScrubReport> {
  const inspect = new InspectStore(db);
  const report: ScrubReport = {
    checked: 0,
    bytesChecked: 0,
    corrupted: [],
    missingFiles: [],
    wrongSize: [],
    orphanFiles: [],
    brokenManifests: [],
    danglingTags: [],
    repaired: options.repair ?? false,
  };
  const forget: string[] = [];
  for (const row of inspect.blobs()) {
    const digest = parseDigest(row.digest);
    const size = await store.blobSize(digest);
    if (size === null) {
      report.missingFiles.push(row.digest);
      forget.push(row.digest);
      continue;
    }
    report.checked++;
    report.bytesChecked += size;
    const actual = await store.hashBlob(digest);
    if (actual !== row.digest) {
      report.corrupted.push({ digest: row.digest, quarantinedTo: await store.quarantineBlob(digest) });
      forget.push(row.digest);
    } else if (size !== row.size) {
      report.wrongSize.push(row.digest);
    }
  }
  for await (const digest of store.listBlobFiles()) {
    if (!inspect.hasBlob(digest)) report.orphanFiles.push(digest);
  }
  if (options.repair) {
    for (const digest of forget) inspect.forgetBlob(digest);
    // Re-checked under the write lock: an upload may have recorded the file meanwhile.
    report.orphanFiles = report.orphanFiles.filter((digest) => inspect.ifNoRow(digest, () => store.removeBlobSync(parseDigest(digest))));
  }
  report.brokenManifests = inspect.brokenManifests();
  report.danglingTags = inspect.danglingTags();
  return report;
}
