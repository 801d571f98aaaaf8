// The benchmark's workloads, each run the same way against every registry. A workload
// returns its figure; run.ts alternates the registries, times the server's CPU and
// prints the table. Setup steps (base image, the 2,000 catalog repositories) are not
// measured.

import { BenchClient, forEachConcurrently, OCI_MANIFEST } from './client.js';
import { generatedBlob, sha256, smallBlobs, type GeneratedBlob } from './blobdata.js';
import { runRate, type RateResult } from './load.js';
import { procStatusBytes, resetPeakRss, type Target } from './servers.js';

export interface Sizes {
  bigBlob: number;
  /** The chunked pushes: this much content, in PATCHes of each of `chunks` bytes. */
  chunkedBlob: number;
  chunks: number[];
  rssBlob: number;
  smallCount: number;
  manifestCount: number;
  catalogRepos: number;
  rateSeconds: number;
}

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

export const FULL: Sizes = {
  bigBlob: GiB,
  chunkedBlob: 512 * MiB,
  chunks: [5 * MiB, 32 * MiB, 100 * MiB],
  rssBlob: 2 * GiB,
  smallCount: 2000,
  manifestCount: 500,
  catalogRepos: 2000,
  rateSeconds: 5,
};

export const QUICK: Sizes = {
  bigBlob: 64 * MiB,
  chunkedBlob: 64 * MiB,
  chunks: [5 * MiB, 32 * MiB],
  rssBlob: 128 * MiB,
  smallCount: 500,
  manifestCount: 100,
  catalogRepos: 200,
  rateSeconds: 2,
};

/** Concurrent clients of the small-blob and manifest pushes (and of setup). */
export const PUSH_CLIENTS = 16;
/** Concurrent clients of the tags-list and catalog tests. */
export const LIST_CLIENTS = 16;

const BASE_REPO = 'bench/base';
const MB = 1e6;

/** One measured figure, with the client CPU it took (100 = one core) when known. */
export interface Figure {
  value: number;
  /** For request-rate tests: p99 latency in ms. */
  p99Ms?: number;
  generatorCpuPercent?: number;
  note?: string;
  /** Bytes the workload moved, for the server's CPU seconds per GiB. */
  bytes?: number;
}

/** What the workloads share for one registry: its client and the base image's digests. */
export interface Subject {
  target: Target;
  client: BenchClient;
  base?: { config: string; layer: string; manifest: Buffer };
}

export function subject(target: Target): Subject {
  return { target, client: new BenchClient(target.url, Math.max(PUSH_CLIENTS, LIST_CLIENTS)) };
}

/**
 * The large blobs of one round, shared by both registries so both receive the same
 * bytes. Fresh pushes get new content: a registry that already has a blob does other
 * work, and that case is measured on its own (`chunked.stored`: a chunked blob pushed
 * again to another repository, as a client that does not check first would push it).
 */
export interface Corpus {
  big: GeneratedBlob;
  /** New content for each chunked push of the round, by chunk size. */
  chunked: Map<number, GeneratedBlob>;
}

export function makeCorpus(sizes: Sizes): Corpus {
  return { big: generatedBlob(sizes.bigBlob), chunked: new Map(sizes.chunks.map((c) => [c, generatedBlob(sizes.chunkedBlob)])) };
}

export function imageManifest(config: { digest: string; size: number }, layer: { digest: string; size: number }, annotations?: Record<string, string>): Buffer {
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config.digest, size: config.size },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layer.digest, size: layer.size }],
      ...(annotations ? { annotations } : {}),
    }),
  );
}

/** Setup: a tiny image (config, one layer, manifest tagged `latest`) in bench/base. */
export async function pushBaseImage(s: Subject): Promise<void> {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
  const [layer] = smallBlobs(1, 1024, 1024);
  const configDigest = sha256(config);
  await s.client.pushBlob(BASE_REPO, configDigest, config.length, config);
  await s.client.pushBlob(BASE_REPO, layer!.digest, layer!.bytes.length, layer!.bytes);
  const manifest = imageManifest({ digest: configDigest, size: config.length }, { digest: layer!.digest, size: layer!.bytes.length });
  await s.client.putManifest(BASE_REPO, 'latest', manifest);
  s.base = { config: configDigest, layer: layer!.digest, manifest };
}

/** Links the base image's blobs into `repo` by cross-repository mount. */
async function mountBase(s: Subject, repo: string): Promise<void> {
  for (const digest of [s.base!.config, s.base!.layer]) {
    if (!(await s.client.mount(repo, digest, BASE_REPO))) throw new Error(`${s.target.name} did not mount ${digest} into ${repo}`);
  }
}

/** Setup: the base image in `count` more repositories, for the catalog test. */
export async function fillCatalog(s: Subject, count: number): Promise<void> {
  await forEachConcurrently(count, PUSH_CLIENTS, async (i) => {
    const repo = `catalog/r${String(i).padStart(5, '0')}`;
    await mountBase(s, repo);
    await s.client.putManifest(repo, 'latest', s.base!.manifest);
  });
}

async function timed(work: () => Promise<void>): Promise<{ seconds: number; cpuPercent: number }> {
  const cpu = process.cpuUsage();
  const started = performance.now();
  await work();
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  return { seconds, cpuPercent: ((used.user + used.system) / 1e6 / seconds) * 100 };
}

/** One blob, POST then a streamed PUT; MB/s. */
export async function pushMonolithic(s: Subject, blob: GeneratedBlob, repo: string): Promise<Figure> {
  const t = await timed(() => s.client.pushBlob(repo, blob.digest, blob.size, blob.stream()));
  return { value: blob.size / MB / t.seconds, generatorCpuPercent: t.cpuPercent };
}

/** A blob in PATCH chunks with Content-Range, the digest given only on the closing PUT; MB/s. */
export async function pushChunked(s: Subject, blob: GeneratedBlob, chunk: number, repo: string): Promise<Figure> {
  const t = await timed(() => s.client.pushChunked(repo, blob.digest, blob.size, chunk, (a, b) => blob.stream(a, b)));
  return { value: blob.size / MB / t.seconds, generatorCpuPercent: t.cpuPercent, bytes: blob.size };
}

/**
 * GET of the blob with the client hashing it and checking the digest; MB/s. One
 * unmeasured pull goes first: the load generator's cold start (its first hashing
 * thread, memory it has not touched yet) cost the first pull of a round up to 40%,
 * and counted against whichever registry the round happened to start with.
 */
export async function pull(s: Subject, blob: GeneratedBlob, repo: string): Promise<Figure> {
  await s.client.pullVerified(repo, blob.digest);
  let size = 0;
  const t = await timed(async () => {
    size = await s.client.pullVerified(repo, blob.digest);
  });
  if (size !== blob.size) throw new Error(`pulled ${size} bytes, expected ${blob.size}`);
  return { value: size / MB / t.seconds, generatorCpuPercent: t.cpuPercent, bytes: size };
}

/** `count` blobs of 1-16 KiB, POST then PUT each, PUSH_CLIENTS at once; blobs per second. */
export async function pushSmallBlobs(s: Subject, count: number, repo: string): Promise<Figure> {
  const blobs = smallBlobs(count, 1024, 16 * 1024);
  const t = await timed(() =>
    forEachConcurrently(count, PUSH_CLIENTS, async (i) => {
      const b = blobs[i]!;
      await s.client.pushBlob(repo, b.digest, b.bytes.length, b.bytes);
    }),
  );
  return { value: count / t.seconds, generatorCpuPercent: t.cpuPercent };
}

/** `count` distinct manifests, each with its own tag, PUSH_CLIENTS at once; per second. */
export async function pushManifests(s: Subject, count: number, repo: string): Promise<Figure> {
  await mountBase(s, repo);
  const config = JSON.parse(s.base!.manifest.toString('utf8')) as { config: { size: number }; layers: { size: number }[] };
  const manifests = Array.from({ length: count }, (_, i) =>
    imageManifest({ digest: s.base!.config, size: config.config.size }, { digest: s.base!.layer, size: config.layers[0]!.size }, { 'bench.index': String(i) }),
  );
  const t = await timed(() =>
    forEachConcurrently(count, PUSH_CLIENTS, (i) => s.client.putManifest(repo, `t${String(i).padStart(4, '0')}`, manifests[i]!)),
  );
  return { value: count / t.seconds, generatorCpuPercent: t.cpuPercent };
}

export interface RateTest {
  method: 'GET' | 'HEAD';
  path: string;
  headers?: Record<string, string>;
  concurrency: number;
}

export function blobHead(s: Subject, concurrency: number): RateTest {
  return { method: 'HEAD', path: `/v2/${BASE_REPO}/blobs/${s.base!.layer}`, concurrency };
}

export function manifestGet(concurrency: number): RateTest {
  return { method: 'GET', path: `/v2/${BASE_REPO}/manifests/latest`, headers: { Accept: OCI_MANIFEST }, concurrency };
}

export function tagsList(repo: string): RateTest {
  return { method: 'GET', path: `/v2/${repo}/tags/list`, concurrency: LIST_CLIENTS };
}

export function catalogPage(): RateTest {
  return { method: 'GET', path: '/v2/_catalog', concurrency: LIST_CLIENTS };
}

/** Requests per second for a fixed duration, with p99. */
export async function rate(s: Subject, test: RateTest, seconds: number, threads: number): Promise<Figure & { raw: RateResult }> {
  const r = await runRate({
    url: s.target.url,
    method: test.method,
    path: test.path,
    headers: test.headers ?? {},
    concurrency: test.concurrency,
    threads,
    durationMs: seconds * 1000,
    expect: 200,
  });
  return { value: r.perSecond, p99Ms: r.p99Ms, generatorCpuPercent: r.generatorCpuPercent, raw: r };
}

/** Checks that the list answers hold what was pushed, so a fast wrong answer cannot win. */
export async function checkLists(s: Subject, tagsRepo: string, tags: number): Promise<void> {
  const t = await s.client.request('GET', `/v2/${tagsRepo}/tags/list`, { expect: 200 });
  const got = (JSON.parse(t.body.toString('utf8')) as { tags: string[] }).tags.length;
  if (got !== tags) throw new Error(`${s.target.name}: tags list has ${got} tags, expected ${tags}`);
  const c = await s.client.request('GET', '/v2/_catalog', { expect: 200 });
  const repos = (JSON.parse(c.body.toString('utf8')) as { repositories: string[] }).repositories.length;
  if (repos === 0) throw new Error(`${s.target.name}: empty catalog page`);
}

/** Peak resident memory of the server (VmHWM) while `blob` is pushed; MB. */
export async function peakRssDuringPush(s: Subject, blob: GeneratedBlob, repo: string): Promise<Figure> {
  const reset = resetPeakRss(s.target.pid);
  const before = procStatusBytes(s.target.pid, 'VmRSS');
  const t = await timed(() => s.client.pushBlob(repo, blob.digest, blob.size, blob.stream()));
  const peak = procStatusBytes(s.target.pid, 'VmHWM');
  return {
    value: peak / MB,
    generatorCpuPercent: t.cpuPercent,
    note: `RSS before ${(before / MB).toFixed(0)} MB, push ${(blob.size / MB / t.seconds).toFixed(0)} MB/s${reset ? '' : ', VmHWM since process start (clear_refs refused)'}`,
  };
}
