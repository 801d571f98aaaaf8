// Browsing the registry (the web UI's reads): a repository's counts and sizes, its tags
// newest first with what each points at, what an image adds up to, who else holds a
// blob, small blobs such as an image config, and the last garbage collection. The
// same name and digest rules as the API; NAME_UNKNOWN and BLOB_UNKNOWN as it answers.

import { RegistryError } from './errors.js';
import { checkName, parseDigest } from './names.js';
import { isIndexMediaType } from './manifest.js';
import type { ManifestService } from './manifests.js';
import type { BlobStore, MetadataStore, TagCursor } from '../../storage/ports.js';

export type { TagCursor };

export interface RepositorySummary {
  name: string;
  tags: number;
  /** Bytes of every blob and manifest the repository can serve, each counted once. */
  size: number;
  lastPush: number | null;
}

export interface TagDetail {
  name: string;
  digest: string;
  mediaType: string;
  pushedAt: number;
  /** The manifest, its config and layers and, for an index, its children's: each blob once. */
  size: number;
  /** `os/arch[/variant]` of each child of an index; empty for a single image. */
  platforms: string[];
}

export interface GcStatus {
  running: boolean;
  lastRunAt: number | null;
  lastFreed: number | null;
}

function unknownName(name: string): RegistryError {
  return new RegistryError('NAME_UNKNOWN', 'repository name not known to registry', { name });
}

export class BrowseService {
  constructor(
    private readonly meta: MetadataStore,
    private readonly store: BlobStore,
    private readonly manifests: ManifestService,
  ) {}

  async summary(name: string): Promise<RepositorySummary> {
    checkName(name);
    const row = await this.meta.repositorySummary(name);
    if (!row) throw unknownName(name);
    return { name, tags: row.tags, size: row.bytes, lastPush: row.lastPush };
  }

  /** One page of tags, newest push first, optionally only those whose name contains `contains`. */
  async tags(name: string, cursor: TagCursor | undefined, contains: string, limit: number): Promise<TagDetail[]> {
    checkName(name);
    const rows = await this.meta.tagsNewestFirst(name, cursor, contains, limit);
    if (!rows) throw unknownName(name);
    return Promise.all(
      rows.map(async (r) => ({
        name: r.name,
        digest: r.digest,
        mediaType: r.mediaType,
        pushedAt: r.updatedAt,
        size: await this.meta.imageSize(name, r.digest),
        platforms: isIndexMediaType(r.mediaType) ? indexPlatforms(await this.manifests.content({ digest: r.digest, mediaType: r.mediaType, size: 0 })) : [],
      })),
    );
  }

  imageSize(name: string, digest: string): Promise<number> {
    return this.meta.imageSize(checkName(name), parseDigest(digest).value);
  }

  /** The tags of a repository that point at `digest`. */
  tagsOf(name: string, digest: string): Promise<string[]> {
    return this.meta.tagsOf(checkName(name), parseDigest(digest).value);
  }

  /** Every repository that may serve the blob (the caller filters by what its viewer may see). */
  repositoriesWithBlob(digest: string): Promise<string[]> {
    return this.meta.repositoriesWithBlob(parseDigest(digest).value);
  }

  /**
   * A blob of the repository read whole, when it is at most `limit` bytes (an image
   * config); undefined when larger. BLOB_UNKNOWN when the repository may not serve it.
   */
  async smallBlob(name: string, digest: string, limit: number): Promise<Buffer | undefined> {
    checkName(name);
    const d = parseDigest(digest);
    const size = await this.meta.blobInRepository(name, d.value);
    if (size === undefined) throw new RegistryError('BLOB_UNKNOWN', 'blob unknown to registry', { digest: d.value });
    return size <= limit ? this.store.read(d.value) : undefined;
  }

  async gcStatus(): Promise<GcStatus> {
    const [running, last] = await Promise.all([this.meta.gcRunning(), this.meta.lastGcRun()]);
    return { running, lastRunAt: last?.at ?? null, lastFreed: last?.freedBytes ?? null };
  }
}

/** `os/arch[/variant]` of each entry of an index's bytes; entries without a platform are skipped. */
export function indexPlatforms(bytes: Buffer): string[] {
  try {
    const index = JSON.parse(bytes.toString('utf8')) as { manifests?: { platform?: { os?: unknown; architecture?: unknown; variant?: unknown } }[] };
    return (index.manifests ?? []).flatMap((m) => {
      const p = m.platform;
      if (!p || typeof p.os !== 'string' || typeof p.architecture !== 'string') return [];
      return [[p.os, p.architecture, ...(typeof p.variant === 'string' ? [p.variant] : [])].join('/')];
    });
  } catch {
    return [];
  }
}
