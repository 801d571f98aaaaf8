// `berth import --from-distribution DIR`: copies the repositories of a reference registry
// (CNCF distribution, `registry:2`) from its filesystem storage into Berth, so a team
// moves off it without pushing again. Read from its layout:
//
//   docker/registry/v2/blobs/sha256/<xx>/<hex>/data                     every blob
//   docker/registry/v2/repositories/<name>/_layers/sha256/<hex>/link    the repository's blobs
//   .../<name>/_manifests/revisions/sha256/<hex>/link                   its manifests
//   .../<name>/_manifests/tags/<tag>/current/link                       its tags
//
// Everything goes through the registry's services, as a push would: each blob's digest
// is verified, each manifest is checked, and an import run twice changes nothing.
// Whatever cannot be imported (a blob whose data is missing, a schema 1 manifest) is
// reported and skipped; the rest goes on.

import type { Command } from 'commander';
import { createReadStream } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { configOption, dataOption, formatBytes, openDataDir, printJson, type StorageFlags } from '../maintenance.js';
import type { Registry } from '../../registry/registry.js';
import { MediaType, isIndexMediaType } from '../../registry/manifest.js';


interface SourceRepository {
  name: string;
  blobs: string[];
  manifests: string[];
  tags: Map<string, string>;
}

export interface ImportReport {
  dryRun: boolean;
  repositories: { name: string; blobs: number; bytes: number; manifests: number; tags: number }[];
  skipped: { repository: string; what: string; reason: string }[];
}

/** The `docker/registry/v2` directory under DIR (DIR may be it, or the storage root above it). */
async function layoutRoot(dir: string): Promise<string> {
  for (const candidate of [join(dir, 'docker', 'registry', 'v2'), dir]) {
    if (await isDir(join(candidate, 'repositories'))) return candidate;
  }
  throw new Error(`${dir} is not a reference registry's storage: no docker/registry/v2/repositories under it`);
}

async function isDir(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isDirectory() ?? false;
}

async function entries(dir: string): Promise<string[]> {
  return (await readdir(dir).catch(() => [] as string[])).sort();
}

async function readLink(path: string): Promise<string | undefined> {
  const text = (await readFile(path, 'utf8').catch(() => undefined))?.trim();
  return text && /^sha256:[0-9a-f]{64}$/.test(text) ? text : undefined;
}

/** Every repository under repositories/ (names nest: a directory holding `_manifests` is one). */
async function findRepositories(root: string): Promise<SourceRepository[]> {
  const found: SourceRepository[] = [];
  const walk = async (dir: string): Promise<void> => {
    const names = await entries(dir);
    if (names.includes('_manifests') || names.includes('_layers')) {
      found.push(await readRepository(join(root, 'repositories'), dir));
    }
    for (const name of names) if (!name.startsWith('_') && (await isDir(join(dir, name)))) await walk(join(dir, name));
  };
  await walk(join(root, 'repositories'));
  return found;
}

async function readRepository(base: string, dir: string): Promise<SourceRepository> {
  const links = async (sub: string) => {
    const digests: string[] = [];
    for (const hex of await entries(join(dir, sub, 'sha256'))) {
      const digest = await readLink(join(dir, sub, 'sha256', hex, 'link'));
      if (digest) digests.push(digest);
    }
    return digests;
  };
  const tags = new Map<string, string>();
  for (const tag of await entries(join(dir, '_manifests', 'tags'))) {
    const digest = await readLink(join(dir, '_manifests', 'tags', tag, 'current', 'link'));
    if (digest) tags.set(tag, digest);
  }
  return { name: relative(base, dir).split('\\').join('/'), blobs: await links('_layers'), manifests: await links(join('_manifests', 'revisions')), tags };
}

function blobData(root: string, digest: string): string {
  const hex = digest.slice('sha256:'.length);
  return join(root, 'blobs', 'sha256', hex.slice(0, 2), hex, 'data');
}

/** A manifest's media type: its own field, else what its shape says (as the reference does). */
function mediaTypeOf(bytes: Buffer): string {
  const m = JSON.parse(bytes.toString('utf8')) as { schemaVersion?: number; mediaType?: string; manifests?: unknown; config?: { mediaType?: string } };
  if (m.schemaVersion === 1) throw new Error('schema 1 manifests are not supported');
  if (m.mediaType) return m.mediaType;
  if (m.manifests) return MediaType.ociIndex;
  return m.config?.mediaType?.startsWith('application/vnd.docker.') ? MediaType.dockerManifest : MediaType.ociManifest;
}

export async function importDistribution(dir: string, registry: Registry | undefined): Promise<ImportReport> {
  const root = await layoutRoot(dir);
  const report: ImportReport = { dryRun: !registry, repositories: [], skipped: [] };
  for (const repo of await findRepositories(root)) {
    const done = { name: repo.name, blobs: 0, bytes: 0, manifests: 0, tags: 0 };
    const skip = (what: string, err: unknown) => report.skipped.push({ repository: repo.name, what, reason: (err as Error).message });
    for (const digest of repo.blobs) {
      const path = blobData(root, digest);
      try {
        const size = (await stat(path)).size;
        if (registry) await registry.blobs.putMonolithic(repo.name, digest, { stream: createReadStream(path), length: size });
        done.blobs++;
        done.bytes += size;
      } catch (err) {
        skip(digest, (err as NodeJS.ErrnoException).code === 'ENOENT' ? new Error('its data is missing') : err);
      }
    }
    // Manifests before the indexes that list them, then the tags.
    const manifests: { digest: string; bytes: Buffer; mediaType: string }[] = [];
    for (const digest of new Set([...repo.manifests, ...repo.tags.values()])) {
      try {
        const bytes = await readFile(blobData(root, digest));
        manifests.push({ digest, bytes, mediaType: mediaTypeOf(bytes) });
      } catch (err) {
        skip(digest, (err as NodeJS.ErrnoException).code === 'ENOENT' ? new Error('its data is missing') : err);
      }
    }
    manifests.sort((a, b) => Number(isIndexMediaType(a.mediaType)) - Number(isIndexMediaType(b.mediaType)));
    const imported = new Map<string, { bytes: Buffer; mediaType: string }>();
    for (const m of manifests) {
      try {
        if (registry) await registry.manifests.put(repo.name, m.digest, m.mediaType, m.bytes);
        imported.set(m.digest, m);
        done.manifests++;
      } catch (err) {
        skip(m.digest, err);
      }
    }
    for (const [tag, digest] of repo.tags) {
      const m = imported.get(digest);
      if (!m) continue; // its manifest was skipped, and said why
      try {
        if (registry) await registry.manifests.put(repo.name, tag, m.mediaType, m.bytes);
        done.tags++;
      } catch (err) {
        skip(`tag ${tag}`, err);
      }
    }
    report.repositories.push(done);
  }
  return report;
}

export function register(program: Command): void {
  program
    .command('import')
    .description("copy a reference registry's filesystem storage (registry:2) into this registry")
    .requiredOption('--from-distribution <dir>', 'its storage root (the directory holding docker/registry/v2)')
    .option('--dry-run', 'list what would be imported, change nothing')
    .option(...dataOption)
    .option(...configOption)
    .option('--json', 'print the report as JSON')
    .action(async (opts: StorageFlags & { fromDistribution: string; dryRun?: boolean; json?: boolean }) => {
      const registry = opts.dryRun ? undefined : await openDataDir(opts, { mustExist: false });
      try {
        const report = await importDistribution(opts.fromDistribution, registry);
        if (opts.json) return printJson(report);
        const verb = report.dryRun ? 'would import' : 'imported';
        for (const r of report.repositories) {
          process.stdout.write(`${verb} ${r.name}: ${r.blobs} blobs (${formatBytes(r.bytes)}), ${r.manifests} manifests, ${r.tags} tags\n`);
        }
        for (const s of report.skipped) process.stdout.write(`skipped ${s.repository} ${s.what}: ${s.reason}\n`);
        const total = report.repositories.reduce((n, r) => n + r.bytes, 0);
        process.stdout.write(`${verb} ${report.repositories.length} repositories (${formatBytes(total)}), skipped ${report.skipped.length}\n`);
        if (report.skipped.length) process.exitCode = 1;
      } finally {
        await registry?.close();
      }
    });
}
