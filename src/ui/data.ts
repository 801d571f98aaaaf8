// What the pages read and change, and nothing more: the UI's own small interface, so
// pages do not depend on how the registry is put together. `registryData` implements
// it with the registry's services (the same name rules, listing code and errors as the API).

import type { Registry } from '../registry/registry.js';
import type { GcStatus, RepositorySummary, TagCursor, TagDetail } from '../registry/browse.js';
import type { UsageReport } from '../registry/usage.js';
import type { User } from '../registry/users.js';
import { changePassword, createUser, setGroups } from '../../auth/accounts.js';

export type { GcStatus, RepositorySummary, TagCursor, TagDetail, UsageReport };

export interface ManifestView {
  digest: string;
  mediaType: string;
  size: number;
  bytes: Buffer;
}

export interface ReferrerView {
  digest: string;
  mediaType: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
}

export interface UiData {
  /** Repositories in catalog order after `after` that `visible` lets through and whose name contains `contains`. */
  repositories(after: string, limit: number, contains: string, visible: (name: string) => boolean): Promise<{ items: RepositorySummary[]; next?: string }>;
  repository(name: string): Promise<RepositorySummary>;
  tags(name: string, cursor: TagCursor | undefined, contains: string, limit: number): Promise<{ items: TagDetail[]; next?: TagCursor }>;
  manifest(name: string, reference: string): Promise<ManifestView>;
  /** A blob of at most `limit` bytes (an image config), or undefined when larger. */
  smallBlob(name: string, digest: string, limit: number): Promise<Buffer | undefined>;
  imageSize(name: string, digest: string): Promise<number>;
  referrers(name: string, digest: string): Promise<ReferrerView[]>;
  tagsOf(name: string, digest: string): Promise<string[]>;
  repositoriesWithBlob(digest: string): Promise<string[]>;
  /** Deletes a tag, or a manifest (with its tags and referrers) when `reference` is a digest. */
  delete(name: string, reference: string): Promise<void>;
  usage(): Promise<UsageReport>;
  gcStatus(): Promise<GcStatus>;
  users: {
    list(): Promise<User[]>;
    add(user: { name: string; password: string; admin: boolean; groups: string[] }): Promise<void>;
    remove(name: string): Promise<boolean>;
    setPassword(name: string, password: string): Promise<void>;
    setGroups(name: string, groups: string[]): Promise<void>;
  };
}

/** Catalog names are read in batches up to this large while a search or the access rules skip some. */
const SCAN_BATCH = 1000;

export function registryData(registry: Registry): UiData {
  const { manifests, browse, catalog, referrers, users } = registry;
  return {
    async repositories(after, limit, contains, visible) {
      const items: RepositorySummary[] = [];
      let last = after || undefined;
      // A page's worth first; more, up to SCAN_BATCH at a time, only while names are skipped.
      for (let batch = limit + 1; ; batch = Math.min(batch * 4, SCAN_BATCH)) {
        const page = await catalog.list(last, batch);
        for (const name of page.items) {
          if (contains && !name.includes(contains)) continue;
          if (!visible(name)) continue;
          if (items.length === limit) return { items, next: items[items.length - 1]!.name };
          items.push(await browse.summary(name));
        }
        if (!page.next) return { items };
        last = page.next;
      }
    },
    repository: (name) => browse.summary(name),
    async tags(name, cursor, contains, limit) {
      const rows = await browse.tags(name, cursor, contains, limit + 1);
      if (rows.length <= limit) return { items: rows };
      const items = rows.slice(0, limit);
      const lastRow = items[items.length - 1]!;
      return { items, next: { time: lastRow.pushedAt, name: lastRow.name } };
    },
    async manifest(name, reference) {
      const m = await manifests.resolve(name, reference);
      return { ...m, bytes: await manifests.content(m) };
    },
    smallBlob: (name, digest, limit) => browse.smallBlob(name, digest, limit),
    imageSize: (name, digest) => browse.imageSize(name, digest),
    async referrers(name, digest) {
      const { index } = await referrers.list(name, digest, undefined);
      return (index as { manifests: ReferrerView[] }).manifests;
    },
    tagsOf: (name, digest) => browse.tagsOf(name, digest),
    repositoriesWithBlob: (digest) => browse.repositoriesWithBlob(digest),
    delete: (name, reference) => manifests.delete(name, reference),
    usage: () => registry.usage.report(),
    gcStatus: () => browse.gcStatus(),
    users: {
      list: () => users.list(),
      add: (user) => createUser(users, user),
      remove: (name) => users.remove(name),
      setPassword: (name, password) => changePassword(users, name, password),
      setGroups: (name, groups) => setGroups(users, name, groups),
    },
  };
}
