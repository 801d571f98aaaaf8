// Scrub: re-hashes every blob file and checks the metadata against the files. Corrupt
// files are quarantined at once (serving them would hand clients bad bytes); other
// findings are reported, and fixed with `repair`: rows whose file is gone or corrupt
// are forgotten (clients then push the blob again), files without rows are removed.

import { createHash } from 'node:crypto';
import { Writable } from 'node:stream';
import type { BlobStore, BrokenManifest, MetadataStore } from '../../storage/ports.js';

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

export class ScrubService {
  constructor(
    private readonly meta: MetadataStore,
    private readonly store: BlobStore,
  ) {}

  async run(options: { repair?: boolean } = {}): Promise<ScrubReport> {
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
    const recorded = new Set<string>();
    for (const row of await this.meta.allBlobs()) {
      recorded.add(row.digest);
      const size = await this.store.stat(row.digest);
      if (size === null) {
        report.missingFiles.push(row.digest);
        forget.push(row.digest);
        continue;
      }
      report.checked++;
      report.bytesChecked += size;
      if ((await this.hash(row.digest)) !== row.digest) {
        report.corrupted.push({ digest: row.digest, quarantinedTo: await this.store.quarantine(row.digest) });
        forget.push(row.digest);
      } else if (size !== row.size) {
        report.wrongSize.push(row.digest);
      }
    }
    for await (const digest of this.store.list()) {
      if (!recorded.has(digest)) report.orphanFiles.push(digest);
    }
    if (options.repair) {
      for (const digest of forget) await this.meta.forgetBlob(digest);
      // Re-checked just before: an upload may have recorded the object meanwhile (and
      // a writer that records one checks it afterwards and publishes it again).
      const removed: string[] = [];
      for (const digest of report.orphanFiles) {
        if ((await this.meta.blobSize(digest)) !== undefined) continue;
        await this.store.delete(digest);
        removed.push(digest);
      }
      report.orphanFiles = removed;
    }
    report.brokenManifests = await this.meta.brokenManifests();
    report.danglingTags = await this.meta.danglingTags();
    return report;
  }

  /** Hashes a stored blob with its digest's algorithm; resolves to `algorithm:hex`. */
  private async hash(digest: string): Promise<string> {
    const algorithm = digest.slice(0, digest.indexOf(':'));
    const hash = createHash(algorithm);
    const reader = await this.store.open(digest);
    await reader.writeTo(
      new Writable({
        write(chunk: Buffer, _encoding, done) {
          hash.update(chunk);
          done();
        },
      }),
    );
    return `${algorithm}:${hash.digest('hex')}`;
  }
}
