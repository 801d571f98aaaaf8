// Manifest rules: put (validate, check references, store bytes, record, tag), get by
// tag or digest (exact bytes), delete, tags list, catalog and referrers.

import { createHash } from 'node:crypto';
import { RegistryError } from './errors.js';
import { checkName, checkTag, looksLikeDigest, parseDigest, type Digest } from './names.js';
import { MediaType, parseManifest, type ParsedManifest } from './manifest.js';
import type { BlobStore, ManifestRecord, MetadataStore } from '../../storage/ports.js';
import { publishObject } from './publish.js';

export interface StoredManifest {
  digest: string;
  mediaType: string;
  size: number;
}

export interface Page {
  items: string[];
  /** The `last` value of the next page, when there may be one. */
  next?: string;
}

/**
 * Manifest bytes are immutable, so a cache by digest serves hot tags without disk reads.
 * It is bounded in bytes, not entries (1,024 manifests of 4 MiB held 1.3 GB), and takes
 * no manifest over CACHE_ENTRY_BYTES: those are rare, and their transfer dwarfs a read.
 */
const CACHE_BYTES = 32 * 1024 * 1024;
const CACHE_ENTRY_BYTES = 1024 * 1024;

export class ManifestService {
  /** Least recently used first (a hit moves its entry to the end). */
  private readonly cache = new Map<string, Buffer>();
  private cachedBytes = 0;

  constructor(
    private readonly meta: MetadataStore,
    private readonly store: BlobStore,
  ) {}

  async put(
    repository: string,
    reference: string,
    contentType: string | undefined,
    body: Buffer,
    extraTags: string[] = [],
    options: { referencesFetchedLater?: boolean } = {},
  ): Promise<{ digest: string; subject: string | null; tags: string[] }> {
    checkName(repository);
    const byDigest = looksLikeDigest(reference);
    const expected = byDigest ? parseDigest(reference) : undefined;
    const tags = byDigest ? [] : [checkTag(reference)];
    for (const tag of extraTags) tags.push(checkTag(tag));

    const algorithm = expected?.algorithm ?? 'sha256';
    const hex = createHash(algorithm).update(body).digest('hex');
    const digest: Digest = { algorithm, hex, value: `${algorithm}:${hex}` };
    if (expected && expected.value !== digest.value) {
      throw new RegistryError('DIGEST_INVALID', 'manifest digest does not match its content', { expected: expected.value, actual: digest.value });
    }

    const parsed = parseManifest(body, contentType);
    const blobs = options.referencesFetchedLater ? parsed.blobs : await this.checkSizes(repository, parsed);
    const missing = await publishObject(
      this.store,
      this.meta,
      digest.value,
      () => this.store.putBlob(digest.value, body),
      () =>
        this.meta.putManifest({
          repository,
          digest: digest.value,
          mediaType: parsed.mediaType,
          size: body.length,
          artifactType: parsed.artifactType,
          subject: parsed.subject,
          annotations: parsed.annotations ? JSON.stringify(parsed.annotations) : null,
          blobs: blobs.map(({ digest, kind }) => ({ digest, kind })),
          children: parsed.children.map((child) => child.digest),
          tags,
          referencesFetchedLater: options.referencesFetchedLater,
        }),
    );
    if (missing) {
      throw new RegistryError(
        'MANIFEST_BLOB_UNKNOWN',
        missing.kind === 'blob' ? 'manifest references a blob unknown to this repository' : 'index references a manifest unknown to this repository',
        { digest: missing.digest },
      );
    }
    this.remember(digest.value, body);
    return { digest: digest.value, subject: parsed.subject, tags };
  }

  /** Looks a manifest up by tag or digest; MANIFEST_UNKNOWN when absent. */
  async resolve(repository: string, reference: string): Promise<StoredManifest> {
    checkName(repository);
    let row: ManifestRecord | undefined;
    if (looksLikeDigest(reference)) {
      row = await this.meta.manifestByDigest(repository, parseDigest(reference).value);
    } else {
      row = await this.meta.manifestByTag(repository, checkTag(reference));
    }
    if (!row) throw new RegistryError('MANIFEST_UNKNOWN', 'manifest unknown to registry', { reference });
    return { digest: row.digest, mediaType: row.mediaType, size: row.size };
  }

  async content(manifest: StoredManifest): Promise<Buffer> {
    const cached = this.cache.get(manifest.digest);
    if (cached) {
      this.cache.delete(manifest.digest);
      this.cache.set(manifest.digest, cached);
      return cached;
    }
    const bytes = await this.store.read(manifest.digest);
    this.remember(manifest.digest, bytes);
    return bytes;
  }

  /** By digest: the manifest and its tags. By tag: only the tag (OCI v1.1 tag deletion). */
  async delete(repository: string, reference: string): Promise<void> {
    checkName(repository);
    const removed = looksLikeDigest(reference)
      ? await this.meta.deleteManifest(repository, parseDigest(reference).value)
      : await this.meta.deleteTag(repository, checkTag(reference));
    if (!removed) throw new RegistryError('MANIFEST_UNKNOWN', 'manifest unknown to registry', { reference });
  }

  private remember(digest: string, bytes: Buffer): void {
    if (bytes.length > CACHE_ENTRY_BYTES || this.cache.has(digest)) return;
    for (const [old, held] of this.cache) {
      if (this.cachedBytes + bytes.length <= CACHE_BYTES) break;
      this.cache.delete(old);
      this.cachedBytes -= held.length;
    }
    this.cache.set(digest, bytes);
    this.cachedBytes += bytes.length;
  }

  /**
   * The blobs to record for a manifest, once the sizes it declares are checked against
   * what is stored (MANIFEST_INVALID when one differs): blobs and manifests never change,
   * so a size read here stays true. A foreign layer that was never pushed is left out; one
   * that was is recorded, so collections keep it. What is missing is for putManifest to
   * find, in its transaction.
   */
  private async checkSizes(repository: string, parsed: ParsedManifest): Promise<ParsedManifest['blobs']> {
    const wrongSize = (what: string, digest: string, declared: number, stored: number) =>
      new RegistryError('MANIFEST_INVALID', `the manifest gives ${what} ${digest} size ${declared}, the stored one has ${stored} bytes`, {
        digest,
        size: declared,
        stored,
      });
    const [blobSizes, childSizes] = await Promise.all([
      Promise.all(parsed.blobs.map((blob) => this.meta.blobInRepository(repository, blob.digest))),
      Promise.all(parsed.children.map(async (child) => (await this.meta.manifestByDigest(repository, child.digest))?.size)),
    ]);
    parsed.children.forEach((child, i) => {
      const stored = childSizes[i];
      if (stored !== undefined && stored !== child.size) throw wrongSize('manifest', child.digest, child.size, stored);
    });
    return parsed.blobs.filter((blob, i) => {
      const stored = blobSizes[i];
      if (stored !== undefined && stored !== blob.size) throw wrongSize(blob.kind, blob.digest, blob.size, stored);
      return stored !== undefined || !blob.foreign;
    });
  }
}

/** Tag lists of a repository, paginated. */
export class TagService {
  constructor(private readonly meta: MetadataStore) {}

  async list(repository: string, last: string | undefined, n: number | undefined): Promise<Page> {
    checkName(repository);
    const result = await page((after, limit) => this.meta.listTags(repository, after, limit), last, n);
    if (!result) throw new RegistryError('NAME_UNKNOWN', 'repository name not known to registry', { name: repository });
    return result;
  }
}

/** The catalog: repositories that hold a manifest, paginated. */
export class CatalogService {
  constructor(private readonly meta: MetadataStore) {}

  list(last: string | undefined, n: number | undefined): Promise<Page> {
    return page((after, limit) => this.meta.catalog(after, limit), last, n) as Promise<Page>;
  }
}

/**
 * What one referrers response holds at most: descriptors carry their manifest's
 * annotations (up to 4 MiB each), and 130 such made one list a 500 ("Invalid string
 * length") at 2.2 GB. Past either bound the list goes on in another page (`next`).
 */
const REFERRERS_PAGE_BYTES = 4 * 1024 * 1024;
const REFERRERS_PAGE_COUNT = 1000;
/** Rows read from the store at a time while a page fills. */
const REFERRERS_BATCH = 64;

/** Referrers of a subject as an OCI index, optionally filtered by artifactType, in pages. */
export class ReferrerService {
  constructor(private readonly meta: MetadataStore) {}

  /** The page after the referrer `last` (from the previous page's `next`); `next` is set when more may follow. */
  async list(
    repository: string,
    subject: string,
    artifactType: string | undefined,
    last = '',
  ): Promise<{ index: object; filtered: boolean; next?: string }> {
    checkName(repository);
    const digest = parseDigest(subject);
    const manifests: Record<string, unknown>[] = [];
    let bytes = 0;
    let after = last;
    let next: string | undefined;
    page: for (;;) {
      const rows = await this.meta.referrers(repository, digest.value, after, REFERRERS_BATCH);
      for (const r of rows) {
        after = r.digest;
        if (artifactType && r.artifactType !== artifactType) continue;
        const d: Record<string, unknown> = { mediaType: r.mediaType, digest: r.digest, size: r.size };
        if (r.artifactType) d.artifactType = r.artifactType;
        if (r.annotations) d.annotations = JSON.parse(r.annotations);
        const size = JSON.stringify(d).length + 1;
        // Every page holds at least one, so a list always advances.
        if (manifests.length > 0 && (bytes + size > REFERRERS_PAGE_BYTES || manifests.length >= REFERRERS_PAGE_COUNT)) {
          next = manifests.at(-1)!.digest as string;
          break page;
        }
        manifests.push(d);
        bytes += size;
      }
      if (rows.length < REFERRERS_BATCH) break;
    }
    return { index: { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests }, filtered: artifactType !== undefined, next };
  }
}

/** Pagination as the spec has it: sorted, `n` items after `last`, and whether more may follow. */
async function page(
  fetch: (after: string, limit: number) => Promise<string[] | undefined>,
  last: string | undefined,
  n: number | undefined,
): Promise<Page | undefined> {
  const limit = n ?? -1;
  // One extra row tells whether a next page exists without a second query.
  const rows = await fetch(last ?? '', limit < 0 ? -1 : limit + 1);
  if (!rows) return undefined;
  if (limit >= 0 && rows.length > limit) {
    const items = rows.slice(0, limit);
    return { items, next: items[items.length - 1] };
  }
  return { items: rows };
}
