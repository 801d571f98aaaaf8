// Manifest rules: put (validate, check references, store bytes, record, tag), get by
// tag or digest (exact bytes), delete, tags list, catalog and referrers.

import { createHash, randomUUID } from 'node:crypto';
import { RegistryError } from './errors.js';
import { checkName, checkTag, looksLikeDigest, parseDigest, type Digest } from './names.js';
import { MediaType, parseManifest } from './manifest.js';
import type { FsBlobStore } from '../../storage/blobstore.js';
import type { ManifestRow, MetadataStore } from '../../storage/metadata.js';

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
    private readonly store: FsBlobStore,
  ) {}

  async put(
    repository: string,
    reference: string,
    contentType: string | undefined,
    body: Buffer,
    extraTags: string[] = [],
    options: { referencesFetchedLater?: boolean } = {},
  ): Promise<{ digest: string; subject: string | null }> {
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
    const temp = `manifest-${randomUUID()}`;
    await this.store.prepareBytes(temp, digest, body);
    let missing;
    try {
      missing = this.meta.putManifest(
        {
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
        },
        () => this.store.placeSync(temp, digest),
      );
    } finally {
      // Placed files are gone from uploads/; a refused manifest leaves its temp file.
      await this.store.removeUpload(temp);
    }
    if (!missing) await this.store.syncPlaced(digest);
    if (missing) {
      throw new RegistryError(
        'MANIFEST_BLOB_UNKNOWN',
        missing.kind === 'blob' ? 'manifest references a blob unknown to this repository' : 'index references a manifest unknown to this repository',
        { digest: missing.digest },
      );
    }
    this.remember(digest.value, body);
    return { digest: digest.value, subject: parsed.subject };
  }

  /** Looks a manifest up by tag or digest; MANIFEST_UNKNOWN when absent. */
  resolve(repository: string, reference: string): StoredManifest {
    checkName(repository);
    let row: ManifestRow | undefined;
    if (looksLikeDigest(reference)) {
      row = this.meta.manifestByDigest(repository, parseDigest(reference).value);
    } else {
      row = this.meta.manifestByTag(repository, checkTag(reference));
    }
    if (!row) throw new RegistryError('MANIFEST_UNKNOWN', 'manifest unknown to registry', { reference });
    return { digest: row.digest, mediaType: row.media_type, size: row.size };
  }

  async content(manifest: StoredManifest): Promise<Buffer> {
    const cached = this.cache.get(manifest.digest);
    if (cached) return cached;
    const bytes = await this.store.readBlob(parseDigest(manifest.digest));
    this.remember(manifest.digest, bytes);
    return bytes;
  }

  /** By digest: the manifest and its tags. By tag: only the tag (OCI v1.1 tag deletion). */
  delete(repository: string, reference: string): void {
    checkName(repository);
    const removed = looksLikeDigest(reference)
      ? this.meta.deleteManifest(repository, parseDigest(reference).value)
      : this.meta.deleteTag(repository, checkTag(reference));
    if (!removed) throw new RegistryError('MANIFEST_UNKNOWN', 'manifest unknown to registry', { reference });
  }

  tags(repository: string, last: string | undefined, n: number | undefined): Page {
    checkName(repository);
    const repoId = this.meta.repositoryId(repository);
    if (repoId === undefined) throw new RegistryError('NAME_UNKNOWN', 'repository name not known to registry', { name: repository });
    return page((after, limit) => this.meta.listTags(repoId, after, limit), last, n);
  }

  catalog(last: string | undefined, n: number | undefined): Page {
    return page((after, limit) => this.meta.catalog(after, limit), last, n);
  }

  /** The referrers of `subject` as an OCI index, optionally filtered by artifactType. */
  referrers(repository: string, subject: string, artifactType: string | undefined): { index: object; filtered: boolean } {
    checkName(repository);
    const digest = parseDigest(subject);
    const rows = this.meta.referrers(repository, digest.value).filter((r) => !artifactType || r.artifact_type === artifactType);
    const manifests = rows.map((r) => {
      const d: Record<string, unknown> = { mediaType: r.media_type, digest: r.digest, size: r.size };
      if (r.artifact_type) d.artifactType = r.artifact_type;
      if (r.annotations) d.annotations = JSON.parse(r.annotations);
      return d;
    });
    return { index: { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests }, filtered: artifactType !== undefined };
  }

  private remember(digest: string, bytes: Buffer): void {
    if (this.cache.size >= CACHE_LIMIT) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(digest, bytes);
  }
}

/** Pagination as the spec has it: sorted, `n` items after `last`, and whether more may follow. */
function page(fetch: (after: string, limit: number) => string[], last: string | undefined, n: number | undefined): Page {
  if (n === 0) return { items: [] };
  const limit = n ?? -1;
  // One extra row tells whether a next page exists without a second query.
  const rows = fetch(last ?? '', limit < 0 ? -1 : limit + 1);
  if (limit >= 0 && rows.length > limit) {
    const items = rows.slice(0, limit);
    return { items, next: items[items.length - 1] };
  }
  return { items: rows };
}
