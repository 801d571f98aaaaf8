// Retention rules per repository pattern: keep the newest N tags, delete tags older
// than a duration, never touch protected tag patterns. The first rule whose pattern
// matches a repository governs it. A tag goes when it is not protected and any limit
// of its rule says so; a manifest left without tags, parent index or live subject goes
// with it (and its referrers), and garbage collection then frees its blobs.

import type { MetadataStore } from '../../storage/ports.js';
import { parseDuration } from './duration.js';
import { globToRegExp } from './glob.js';

export interface RetentionRule {
  /** Repository glob, e.g. `team/*` or `**`. */
  repositories: string;
  keepLast?: number;
  olderThanMs?: number;
  /** Tag globs never deleted, e.g. `latest`, `v*`. */
  protect?: string[];
}

export interface RetentionDecision {
  repository: string;
  tag: string;
  digest: string;
  reason: string;
}

/** Reads rules from config (`retention:` list), naming the key of any mistake. */
export function parseRetentionRules(raw: unknown): RetentionRule[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw new Error('retention: expected a list of rules');
  return raw.map((item: unknown, i) => {
    const where = `retention[${i}]`;
    if (typeof item !== 'object' || item === null) throw new Error(`${where}: expected a mapping`);
    const r = item as Record<string, unknown>;
    for (const key of Object.keys(r)) {
      if (!['repositories', 'keepLast', 'olderThan', 'protect'].includes(key)) throw new Error(`${where}.${key}: unknown key`);
    }
    if (typeof r.repositories !== 'string' || r.repositories === '') throw new Error(`${where}.repositories: expected a glob`);
    const rule: RetentionRule = { repositories: r.repositories };
    if (r.keepLast !== undefined) {
      if (!Number.isInteger(r.keepLast) || (r.keepLast as number) < 0) throw new Error(`${where}.keepLast: expected a whole number`);
      rule.keepLast = r.keepLast as number;
    }
    if (r.olderThan !== undefined) {
      if (typeof r.olderThan !== 'string') throw new Error(`${where}.olderThan: expected a duration such as 30d`);
      try {
        rule.olderThanMs = parseDuration(r.olderThan);
      } catch (err) {
        throw new Error(`${where}.olderThan: ${(err as Error).message}`);
      }
    }
    if (r.protect !== undefined) {
      const list = typeof r.protect === 'string' ? [r.protect] : r.protect;
      if (!Array.isArray(list) || list.some((p) => typeof p !== 'string')) throw new Error(`${where}.protect: expected tag globs`);
      rule.protect = list as string[];
    }
    if (rule.keepLast === undefined && rule.olderThanMs === undefined) throw new Error(`${where}: needs keepLast or olderThan`);
    return rule;
  });
}

export class RetentionService {
  constructor(private readonly meta: MetadataStore) {}

  /** Decides which tags the rules remove; changes nothing. */
  async plan(rules: RetentionRule[], now = Date.now()): Promise<RetentionDecision[]> {
    const compiled = rules.map((r) => ({ ...r, pattern: globToRegExp(r.repositories), protected: (r.protect ?? []).map(globToRegExp) }));
    const decisions: RetentionDecision[] = [];
    const kept = new Map<string, number>();
    // Tags come newest first within each repository.
    for (const tag of await this.meta.allTags()) {
      const rule = compiled.find((r) => r.pattern.test(tag.repository));
      if (!rule || rule.protected.some((p) => p.test(tag.name))) continue;
      const rank = (kept.get(tag.repository) ?? 0) + 1;
      kept.set(tag.repository, rank);
      let reason: string | undefined;
      if (rule.keepLast !== undefined && rank > rule.keepLast) reason = `not among the newest ${rule.keepLast}`;
      else if (rule.olderThanMs !== undefined && tag.updatedAt < now - rule.olderThanMs) reason = `older than ${Math.round(rule.olderThanMs / 86_400_000 * 10) / 10} days`;
      if (reason) decisions.push({ repository: tag.repository, tag: tag.name, digest: tag.manifestDigest, reason });
    }
    return decisions;
  }

  /**
   * Applies a plan: each tag, and its manifest when nothing holds it any more, go in one
   * transaction, so a tag pushed meanwhile onto the same manifest keeps it.
   */
  async apply(decisions: RetentionDecision[]): Promise<{ tagsDeleted: number; manifestsDeleted: number }> {
    let tagsDeleted = 0;
    let manifestsDeleted = 0;
    for (const d of decisions) {
      const result = await this.meta.retireTag(d.repository, d.tag, d.digest);
      if (result.tagDeleted) tagsDeleted++;
      if (result.manifestDeleted) manifestsDeleted++;
    }
    return { tagsDeleted, manifestsDeleted };
  }
}
