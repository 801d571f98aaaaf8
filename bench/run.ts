// `npm run bench`: Berth against the reference registry, same workload, same machine,
// same run. Starts both servers as separate processes, alternates them workload by
// workload, and prints one table with both figures, the ratio Berth/reference, which
// direction is better and the issue's target; then the client and server CPU of every
// measurement, so a saturated load generator shows.
//
//   node dist/bench/run.js [--quick] [--rounds N] [--threads N] [--quiet-logs]
//                          [--no-reference] [--cpu-prof DIR] [--keep] [--only GROUPS] [--json] [--workers N]

import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { processCpuSeconds, procStatusBytes, REFERENCE_BINARY, removeDir, startBerth, startReference, type Target } from './servers.js';
import * as w from './workloads.js';
import { generatedBlob } from './blobdata.js';
import { warmPageCache } from './pagecache.js';
import { formatJson, formatTable, type Measured, type RowSpec } from './table.js';

const { values: opts } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    rounds: { type: 'string', default: '1' },
    threads: { type: 'string', default: '1' },
    'quiet-logs': { type: 'boolean', default: false },
    'no-reference': { type: 'boolean', default: false },
    'cpu-prof': { type: 'string' },
    keep: { type: 'boolean', default: false },
    only: { type: 'string' },
    'no-warm': { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    workers: { type: 'string', default: '1' },
    help: { type: 'boolean', default: false },
  },
});

if (opts.help) {
  process.stdout.write(`usage: node dist/bench/run.js [options]
  --quick          small sizes (64 MiB blob, 2 s rate tests) for a fast check
  --rounds N       run every workload N times, alternating which registry goes first; medians are shown (default 1)
  --threads N      load-generator threads for the request-rate tests (default 1: more only took CPU
                   from the servers on 2 cores; the CPU table shows whether the client saturated)
  --quiet-logs     both registries at log level warn, reference access log off (default: both at info)
  --no-reference   Berth only, even when ${REFERENCE_BINARY} is installed
  --cpu-prof DIR   run Berth under node --cpu-prof, profile written to DIR when it stops
  --keep           keep the data directories and logs (printed at the end)
  --no-warm        do not write and delete as many bytes before each large push (see pagecache.ts)
  --only GROUPS    only these, comma-separated: push,chunked,pull,small,manifests,head,get,tags,catalog,rss
  --json           print every sample (and each round's ratio) as JSON instead of the tables
  --workers N      run Berth as \`berth serve --workers N\` (default 1)
`);
  process.exit(0);
}

const sizes = opts.quick ? w.QUICK : w.FULL;
const rounds = Math.max(1, Number(opts.rounds));
const threads = Math.max(1, Number(opts.threads));
const logs = { quiet: opts['quiet-logs'] };

const ROWS: RowSpec[] = [
  { key: 'push', label: `push ${human(sizes.bigBlob)} blob, POST + streamed PUT`, unit: 'MB/s', better: 'higher', minRatio: 2 },
  ...sizes.chunks.flatMap((c): RowSpec[] => [
    { key: `chunked.fresh.${c}`, label: `push ${human(sizes.chunkedBlob)} in ${human(c)} PATCH chunks, new content`, unit: 'MB/s', better: 'higher', minRatio: 2 },
    { key: `chunked.stored.${c}`, label: `the same again in ${human(c)} chunks to another repository`, unit: 'MB/s', better: 'higher', minRatio: 2 },
  ]),
  { key: 'pull', label: `pull ${human(sizes.bigBlob)}, client verifies sha256`, unit: 'MB/s', better: 'higher', minRatio: 1.0 },
  { key: 'pull.cpu', label: `server CPU per GiB pulled`, unit: 's/GiB', better: 'lower', maxRatio: 1 },
  { key: 'small', label: `${sizes.smallCount} blobs of 1-16 KiB, ${w.PUSH_CLIENTS} clients`, unit: 'blobs/s', better: 'higher', minRatio: 3 },
  ...[16, 64].flatMap((c): RowSpec[] => [
    { key: `head${c}`, label: `blob HEAD, ${c} clients`, unit: 'req/s', better: 'higher', minRatio: 2 },
    { key: `head${c}.p99`, label: `blob HEAD, ${c} clients, p99`, unit: 'ms', better: 'lower', maxRatio: 1 },
  ]),
  ...[16, 64].flatMap((c): RowSpec[] => [
    { key: `get${c}`, label: `manifest GET by tag, ${c} clients`, unit: 'req/s', better: 'higher', minRatio: 2 },
    { key: `get${c}.p99`, label: `manifest GET by tag, ${c} clients, p99`, unit: 'ms', better: 'lower', maxRatio: 1 },
  ]),
  { key: 'manifests', label: `${sizes.manifestCount} manifests pushed, ${w.PUSH_CLIENTS} clients`, unit: 'manifests/s', better: 'higher', minRatio: 2.5 },
  { key: 'tags', label: `tags list of ${sizes.manifestCount} tags, ${w.LIST_CLIENTS} clients`, unit: 'req/s', better: 'higher' },
  { key: 'tags.p99', label: `tags list, p99`, unit: 'ms', better: 'lower' },
  { key: 'catalog', label: `first catalog page, ${sizes.catalogRepos} repos, ${w.LIST_CLIENTS} clients`, unit: 'req/s', better: 'higher', minRatio: 5 },
  { key: 'catalog.p99', label: `first catalog page, p99`, unit: 'ms', better: 'lower' },
  { key: 'rss.peak', label: `peak server RSS over the whole benchmark`, unit: 'MB', better: 'lower', maxBerth: 100 },
  { key: 'rss', label: `peak server RSS pushing ${human(sizes.rssBlob)}, after the rows above`, unit: 'MB', better: 'lower', maxBerth: 100 },
  { key: 'rss.fresh', label: `peak server RSS pushing ${human(sizes.rssBlob)}, fresh server`, unit: 'MB', better: 'lower', maxBerth: 100 },
  { key: 'rss.idle', label: `server RSS idle after start`, unit: 'MB', better: 'lower', maxBerth: 60 },
];

function human(bytes: number): string {
  return bytes >= 2 ** 30 ? `${bytes / 2 ** 30} GiB` : `${bytes / 2 ** 20} MiB`;
}

const measured: Measured = new Map();
const warm = !opts['no-warm'];
let warmDir = tmpdir();

function record(key: string, target: Target, figure: w.Figure, serverCpuPercent: number): void {
  const byTarget = measured.get(key) ?? new Map();
  measured.set(key, byTarget);
  const list = byTarget.get(target.name) ?? [];
  byTarget.set(target.name, list);
  list.push({ ...figure, serverCpuPercent });
}

/**
 * Runs one measurement, times the server's CPU over it, then flushes dirty pages so the
 * next one starts clean. `writes`: bytes the workload will write, to warm the page cache for.
 */
async function measure<F extends w.Figure>(key: string, s: w.Subject, work: () => Promise<F>, writes = 0): Promise<F> {
  if (writes > 0 && warm) await warmPageCache(warmDir, writes);
  const cpu = processCpuSeconds(s.target.pid);
  const started = performance.now();
  const figure = await work();
  const seconds = (performance.now() - started) / 1000;
  const serverCpu = ((processCpuSeconds(s.target.pid) - cpu) / seconds) * 100;
  record(key, s.target, figure, serverCpu);
  if (figure.bytes) record(`${key}.cpu`, s.target, { value: (serverCpu / 100) * seconds / (figure.bytes / 2 ** 30) }, serverCpu);
  if (figure.p99Ms !== undefined) record(`${key}.p99`, s.target, { ...figure, value: figure.p99Ms }, serverCpu);
  // The reference registry does not fsync: its dirty pages must not be flushed during the next test.
  execFileSync('sync');
  progress(`${key} ${s.target.name}: ${figure.value.toFixed(1)}${figure.p99Ms !== undefined ? ` (p99 ${figure.p99Ms.toFixed(2)} ms)` : ''}`);
  return figure;
}

function progress(line: string): void {
  process.stderr.write(`  ${line}\n`);
}

async function main(): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'berth-bench-'));
  warmDir = root;
  const targets: Target[] = [];
  try {
    const withReference = !opts['no-reference'] && existsSync(REFERENCE_BINARY);
    targets.push(await startBerth(root, logs, opts['cpu-prof'], 'berth', ['--workers', opts.workers!]));
    if (withReference) targets.push(await startReference(root, logs));
    const subjects = targets.map(w.subject);

    // --only: the named groups; a pull needs the push before it, a tags list the manifests.
    const only = opts.only ? new Set(opts.only.split(',').map((k) => k.trim())) : undefined;
    if (only?.has('pull')) only.add('push');
    if (only?.has('tags')) only.add('manifests');
    const wanted = (group: string) => !only || only.has(group);

    progress(`setup: base image${wanted('catalog') ? ` and ${sizes.catalogRepos} catalog repositories` : ''}`);
    for (const s of subjects) {
      await w.pushBaseImage(s);
      if (wanted('catalog')) await w.fillCatalog(s, sizes.catalogRepos);
    }

    for (let round = 0; round < rounds; round++) {
      const corpus = wanted('push') || wanted('chunked') ? (progress(`round ${round + 1}/${rounds}: generating two ${human(sizes.bigBlob)} blobs (digests)`), w.makeCorpus(sizes)) : undefined;
      // Alternate who goes first, so warm caches and background flushes favour neither.
      const order = round % 2 === 0 ? subjects : [...subjects].reverse();
      const each = async (group: string, key: string, work: (s: w.Subject) => Promise<w.Figure>, writes = 0) => {
        if (!wanted(group)) return;
        for (const s of order) await measure(key, s, () => work(s), writes);
      };
      const manifestsRepo = `bench/manifests-${round}`;
      await each('push', 'push', (s) => w.pushMonolithic(s, corpus!.big, 'bench/big'), sizes.bigBlob);
      for (const [chunk, blob] of corpus?.chunked ?? []) {
        await each('chunked', `chunked.fresh.${chunk}`, (s) => w.pushChunked(s, blob, chunk, `bench/chunked-${chunk}`), sizes.chunkedBlob);
        await each('chunked', `chunked.stored.${chunk}`, (s) => w.pushChunked(s, blob, chunk, `bench/chunked-${chunk}-again`), sizes.chunkedBlob);
      }
      await each('pull', 'pull', (s) => w.pull(s, corpus!.big, 'bench/big'));
      await each('small', 'small', (s) => w.pushSmallBlobs(s, sizes.smallCount, `bench/small-${round}`));
      await each('manifests', 'manifests', (s) => w.pushManifests(s, sizes.manifestCount, manifestsRepo));
      if (wanted('manifests')) for (const s of subjects) await w.checkLists(s, manifestsRepo, sizes.manifestCount);
      for (const c of [16, 64]) await each('head', `head${c}`, (s) => w.rate(s, w.blobHead(s, c), sizes.rateSeconds, threads));
      for (const c of [16, 64]) await each('get', `get${c}`, (s) => w.rate(s, w.manifestGet(c), sizes.rateSeconds, threads));
      await each('tags', 'tags', (s) => w.rate(s, w.tagsList(manifestsRepo), sizes.rateSeconds, threads));
      await each('catalog', 'catalog', (s) => w.rate(s, w.catalogPage(), sizes.rateSeconds, threads));
    }
    for (const s of subjects) s.client.close();

    // Peak memory while a large blob streams in: on the servers that ran everything
    // above (heaps grown), then on fresh processes with empty data directories.
    if (wanted('rss')) {
      progress(`generating a ${human(sizes.rssBlob)} blob (digest)`);
      const rssBlob = generatedBlob(sizes.rssBlob);
      const peakSoFar = new Map(subjects.map((s) => [s, procStatusBytes(s.target.pid, 'VmHWM')]));
      for (const s of subjects) {
        const during = await measure('rss', s, () => w.peakRssDuringPush(s, rssBlob, 'bench/rss'), sizes.rssBlob);
        record('rss.peak', s.target, { value: Math.max(peakSoFar.get(s)! / 1e6, during.value) }, 0);
      }
      for (const start of withReference ? ['berth', 'reference'] : ['berth']) {
        const fresh = await (start === 'berth' ? startBerth(root, logs, undefined, 'berth-fresh', ['--workers', opts.workers!]) : startReference(root, logs, 'reference-fresh'));
        try {
          const s = w.subject(fresh);
          record('rss.idle', fresh, { value: procStatusBytes(fresh.pid, 'VmRSS') / 1e6 }, 0);
          await measure('rss.fresh', s, () => w.peakRssDuringPush(s, rssBlob, 'bench/rss'), sizes.rssBlob);
          s.client.close();
        } finally {
          await fresh.stop();
        }
      }
    }

    const names = targets.map((t) => t.name);
    const reference = withReference ? execFileSync(REFERENCE_BINARY, ['--version'], { encoding: 'utf8' }).trim() : 'not installed';
    const context = {
      date: new Date().toISOString(),
      reference,
      node: process.version,
      cores: cpus().length,
      cpu: cpus()[0]?.model ?? '?',
      command: `npm run bench --${process.argv.slice(2).length ? ' ' + process.argv.slice(2).join(' ') : ''}`,
      rounds,
    };
    if (opts.json) {
      process.stdout.write(`${formatJson(ROWS, measured, context)}\n`);
      return;
    }
    process.stdout.write(
      [
        '',
        `Berth vs reference registry (${reference}), node ${process.version}, ${context.cores} cores (${context.cpu}), ${context.date.slice(0, 10)}`,
        `command: ${context.command}`,
        `logs: ${logs.quiet ? 'both at warn, reference access log off' : 'both at info (Berth JSON lines, reference access log on), to files'}; page cache warmed before large pushes: ${warm ? 'yes' : 'no'}; rounds: ${rounds}; rate-test threads: ${threads}; MB = 10^6 bytes`,
        '',
        formatTable(ROWS, measured, names),
        '',
      ].join('\n'),
    );
  } finally {
    for (const t of targets) await t.stop();
    if (opts.keep) progress(`kept ${root}`);
    else await removeDir(root);
  }
}

await main();
