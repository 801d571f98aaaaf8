// Small real OCI images for tests, built without Docker: umoci lays out the image and
// adds /bin/busybox (a static binary, so the image runs anywhere) plus any extra files
// as gzip layers. Each helper returns the layout directory, the tag and the digests so
// a test can push the layout and compare what comes back.
//
// Tools are optional on a developer machine: `e2eTools('umoci')` says whether a test can
// run, and throws instead when BERTH_REQUIRE_E2E=1 so CI never silently skips.

import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { accessSync, constants } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Paths of the external tools the end-to-end tests use. */
export const TOOLS = {
  umoci: '/usr/bin/umoci',
  skopeo: '/usr/bin/skopeo',
  busybox: '/bin/busybox',
  'docker-registry': '/usr/bin/docker-registry',
  unshare: '/usr/bin/unshare',
  openssl: '/usr/bin/openssl',
  podman: '/usr/bin/podman',
  // containerd's daemon and client (Debian: containerd), for mirror tests
  containerd: '/usr/bin/containerd',
  ctr: '/usr/bin/ctr',
  // the scale-out drivers' real services (Debian: postgresql, ceph-mon ceph-osd radosgw)
  postgres: '/usr/lib/postgresql/15/bin/postgres',
  'ceph-mon': '/usr/bin/ceph-mon',
  'ceph-osd': '/usr/bin/ceph-osd',
  radosgw: '/usr/bin/radosgw',
  // the web UI's browser tests (Debian: chromium)
  chromium: '/usr/bin/chromium',
} as const;
export type Tool = keyof typeof TOOLS;

function toolPath(tool: Tool): string | undefined {
  const candidates = [TOOLS[tool], ...(process.env.PATH ?? '').split(':').map((d) => join(d, tool))];
  for (const p of candidates) {
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // try the next one
    }
  }
  return undefined;
}

/**
 * True when every tool is installed. When one is missing: with BERTH_REQUIRE_E2E=1 this
 * throws (the test file fails), otherwise it prints why and returns false so the caller
 * can `describe.skipIf(!e2eTools(...))`.
 */
export function e2eTools(...tools: Tool[]): boolean {
  const missing = tools.filter((t) => !toolPath(t));
  if (missing.length === 0) return true;
  const message = `end-to-end test needs ${missing.join(', ')} (not installed)`;
  if (process.env.BERTH_REQUIRE_E2E === '1') throw new Error(`${message} and BERTH_REQUIRE_E2E=1`);
  process.stderr.write(`skipping: ${message}\n`);
  return false;
}

async function tool(name: Tool, args: string[]): Promise<string> {
  const path = toolPath(name);
  if (!path) throw new Error(`${name} is not installed`);
  const { stdout } = await run(path, args, { maxBuffer: 64 * 1024 * 1024 });
  return stdout;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { os: string; architecture: string; variant?: string };
  annotations?: Record<string, string>;
}

export interface ImageManifest {
  schemaVersion: 2;
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
}

export interface BuiltImage {
  /** The OCI layout directory. */
  layout: string;
  tag: string;
  /** `oci:<layout>:<tag>`, the skopeo transport reference. */
  skopeoRef: string;
  /** Digest of the manifest (or index) the tag points at. */
  digest: string;
  /** Raw bytes of that manifest or index, as stored in the layout. */
  raw: Buffer;
}

export interface BuiltManifestImage extends BuiltImage {
  manifest: ImageManifest;
}

export interface BusyboxImageOptions {
  tag?: string;
  /** Files to add, path inside the image -> contents. Each call adds them as one extra layer. */
  extraFiles?: Record<string, string | Buffer>;
  /** More layers: each entry is one layer of files (path -> contents), added in order. */
  extraLayers?: Record<string, string | Buffer>[];
  /** Image config platform; default linux/amd64. */
  os?: string;
  architecture?: string;
  cmd?: string[];
  /** Image config labels. */
  labels?: Record<string, string>;
}

/** A fresh temporary directory (the caller removes it, or uses `withTempDir`). */
export function tempDir(prefix = 'berth-test-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

/** Reads a blob from an OCI layout. */
export function readLayoutBlob(layout: string, digest: string): Promise<Buffer> {
  const [alg, hex] = digest.split(':');
  return readFile(join(layout, 'blobs', alg!, hex!));
}

export function sha256(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

async function indexEntry(layout: string, tag: string): Promise<Descriptor> {
  const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as { manifests: Descriptor[] };
  const entry = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag);
  if (!entry) throw new Error(`tag ${tag} not in ${layout}/index.json`);
  return entry;
}

async function addLayer(layout: string, tag: string, files: Record<string, string | Buffer>): Promise<void> {
  const staging = await tempDir('berth-layer-');
  try {
    // `umoci insert` of a directory at / adds its whole tree as one layer.
    for (const [path, contents] of Object.entries(files)) {
      const target = join(staging, path);
      await mkdir(dirname(target), { recursive: true });
      await writeFile(target, contents);
    }
    await tool('umoci', ['insert', '--image', `${layout}:${tag}`, staging, '/']);
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

/**
 * Builds (or adds a tag to) an OCI layout at `dir` holding an image with /bin/busybox in
 * its first layer and one more layer per `extraFiles`/`extraLayers` entry. Returns the
 * manifest digest and bytes. The created timestamps make each build's digest unique.
 */
export async function buildBusyboxImage(dir: string, opts: BusyboxImageOptions = {}): Promise<BuiltManifestImage> {
  const tag = opts.tag ?? 'latest';
  const ref = `${dir}:${tag}`;
  try {
    await readFile(join(dir, 'oci-layout'));
  } catch {
    await tool('umoci', ['init', '--layout', dir]);
  }
  await tool('umoci', ['new', '--image', ref]);
  await tool('umoci', ['insert', '--image', ref, TOOLS.busybox, '/bin/busybox']);
  for (const files of [...(opts.extraFiles ? [opts.extraFiles] : []), ...(opts.extraLayers ?? [])]) {
    await addLayer(dir, tag, files);
  }
  await tool('umoci', [
    'config',
    '--image',
    ref,
    '--os',
    opts.os ?? 'linux',
    '--architecture',
    opts.architecture ?? 'amd64',
    ...(opts.cmd ?? ['/bin/busybox', 'sh']).flatMap((c) => ['--config.cmd', c]),
    ...Object.entries(opts.labels ?? {}).flatMap(([k, v]) => ['--config.label', `${k}=${v}`]),
  ]);
  await tool('umoci', ['gc', '--layout', dir]);
  const entry = await indexEntry(dir, tag);
  const raw = await readLayoutBlob(dir, entry.digest);
  return { layout: dir, tag, skopeoRef: `oci:${dir}:${tag}`, digest: entry.digest, raw, manifest: JSON.parse(raw.toString()) };
}

export interface MultiPlatformOptions {
  tag?: string;
  /** `os/arch` pairs; default linux/amd64 and linux/arm64. */
  platforms?: string[];
}

export interface BuiltIndex extends BuiltImage {
  /** One child manifest per platform, in the order given. */
  children: { platform: string; digest: string; manifest: ImageManifest }[];
}

/**
 * Builds a multi-platform OCI index: one busybox image per platform (each with a file
 * /etc/platform naming it, so a test can tell them apart), then an index referencing
 * them, tagged `tag` in the layout's index.json. umoci cannot make indexes, so the index
 * is written here by hand.
 */
export async function buildMultiPlatformIndex(dir: string, opts: MultiPlatformOptions = {}): Promise<BuiltIndex> {
  const tag = opts.tag ?? 'latest';
  const platforms = opts.platforms ?? ['linux/amd64', 'linux/arm64'];
  const children: BuiltIndex['children'] = [];
  for (const [i, platform] of platforms.entries()) {
    const [os, architecture] = platform.split('/') as [string, string];
    const img = await buildBusyboxImage(dir, {
      tag: `${tag}-platform-${i}`,
      os,
      architecture,
      extraFiles: { 'etc/platform': `${platform}\n` },
    });
    children.push({ platform, digest: img.digest, manifest: img.manifest });
  }
  const indexPath = join(dir, 'index.json');
  const layoutIndex = JSON.parse(await readFile(indexPath, 'utf8')) as { schemaVersion: 2; manifests: Descriptor[] };
  const childDescriptors: Descriptor[] = [];
  for (const c of children) {
    const raw = await readLayoutBlob(dir, c.digest);
    const [os, architecture] = c.platform.split('/') as [string, string];
    childDescriptors.push({
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest: c.digest,
      size: raw.length,
      platform: { os, architecture },
    });
  }
  const raw = Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: childDescriptors }),
  );
  const digest = sha256(raw);
  await writeFile(join(dir, 'blobs', 'sha256', digest.slice('sha256:'.length)), raw);
  // Keep only the index under `tag`; the per-platform tags were scaffolding.
  layoutIndex.manifests = layoutIndex.manifests.filter(
    (m) => !m.annotations?.['org.opencontainers.image.ref.name']?.startsWith(`${tag}-platform-`) &&
      m.annotations?.['org.opencontainers.image.ref.name'] !== tag,
  );
  layoutIndex.manifests.push({
    mediaType: 'application/vnd.oci.image.index.v1+json',
    digest,
    size: raw.length,
    annotations: { 'org.opencontainers.image.ref.name': tag },
  });
  await writeFile(indexPath, JSON.stringify(layoutIndex));
  return { layout: dir, tag, skopeoRef: `oci:${dir}:${tag}`, digest, raw, children };
}

/**
 * Writes a `docker save` style archive of an OCI layout image with skopeo, named
 * `name` (e.g. `example/busybox:latest`) in its manifest.json. Returns the archive path.
 */
export async function toDockerArchive(image: BuiltImage, file: string, name: string): Promise<string> {
  await tool('skopeo', ['copy', '--quiet', image.skopeoRef, `docker-archive:${file}:${name}`]);
  return file;
}

/** Runs skopeo with the given arguments (for interop tests), returning stdout. */
export function skopeo(...args: string[]): Promise<string> {
  return tool('skopeo', args);
}
