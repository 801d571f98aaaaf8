// Manifest rules: put (validate, check references, store bytes, record, tag), get by
// tag or digest (exact bytes), delete, tags list, catalog and referrers.

import { createHash } from 'node:crypto';
import { RegistryError } from './errors.js';
import { checkName, checkTag, looksLikeDigest, parseDigest, type Digest } from './names.js';
import { MediaType, parseManifest } from './manifest.js';
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

/** Manifest bytes are immutable, so a small cache by digest serves hot tags without disk reads. */
const CACHE_LIMIT = 1024;

export class ManifestService {
  private readonly cache = new Map<string, Buffer>();

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
          blobs: parsed.blobs,
          children: parsed.children,
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
    if (cached) return cached;
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
    if (this.cache.size >= CACHE_LIMIT) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(digest, bytes);
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

/** Referrers of a subject as an OCI index, optionally filtered by artifactType. */
export class ReferrerService {
  constructor(private readonly meta: MetadataStore) {}

  async list(repository: string, subject: string, artifactType: string | undefined): Promise<{ index: object; filtered: boolean }> {
    checkName(repository);
    const digest = parseDigest(subject);
    const rows = (await this.meta.referrers(repository, digest.value)).filter((r) => !artifactType || r.artifactType === artifactType);
    const manifests = rows.map((r) => {
      const d: Record<string, unknown> = { mediaType: r.mediaType, digest: r.digest, size: r.size };
      if (r.artifactType) d.artifactType = r.artifactType;
      if (r.annotations) d.annotations = JSON.parse(r.annotations);
      return d;
    });
    return { index: { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests }, filtered: artifactType !== undefined };
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
