// `npm run bench:ui`: the web UI's page times and sizes on a large registry. Starts
// Berth as its own process, fills it (unmeasured) with 5,000 repositories and one
// repository of 10,000 tags (each its own manifest), then requests each page back to
// back for a fixed time and prints p50, p99, requests per second and the page's size.
// The targets: p99 under 100 ms and pages under 100 KB.
//
//   node dist/bench/ui.js [--repos N] [--tags N] [--seconds S] [--concurrency 1,4] [--keep]

import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { forEachConcurrently } from './client.js';
import { runRate } from './load.js';
import { processCpuSeconds, removeDir, startBerth } from './servers.js';
import { fillCatalog, imageManifest, PUSH_CLIENTS, pushBaseImage, subject } from './workloads.js';

const { values: opts } = parseArgs({
  options: {
    repos: { type: 'string', default: '5000' },
    tags: { type: 'string', default: '10000' },
    seconds: { type: 'string', default: '5' },
    concurrency: { type: 'string', default: '1,4' },
    keep: { type: 'boolean', default: false },
  },
});

const TAG_REPO = 'ui/tags';
const repos = Number(opts.repos);
const tags = Number(opts.tags);

const root = await mkdtemp(join(tmpdir(), 'berth-bench-ui-'));
const target = await startBerth(root, { quiet: true });
try {
  const s = subject(target);
  const started = performance.now();
  await pushBaseImage(s);
  await fillCatalog(s, repos);
  // 10,000 tags, each on a manifest of its own (the same blobs, a distinct annotation).
  for (const digest of [s.base!.config, s.base!.layer]) await s.client.mount(TAG_REPO, digest, 'bench/base');
  const config = { digest: s.base!.config, size: 0 };
  const layer = { digest: s.base!.layer, size: 0 };
  const base = JSON.parse(s.base!.manifest.toString('utf8')) as { config: { size: number }; layers: { size: number }[] };
  config.size = base.config.size;
  layer.size = base.layers[0]!.size;
  await forEachConcurrently(tags, PUSH_CLIENTS, async (i) => {
    await s.client.putManifest(TAG_REPO, `v${i}`, imageManifest(config, layer, { build: String(i) }));
  });
  process.stdout.write(`setup: ${repos} repositories and ${tags} tags in ${((performance.now() - started) / 1000).toFixed(1)} s\n`);

  // A cursor half-way down the tags: the `Older tags` link of page 50.
  let middle = `/r/${TAG_REPO}`;
  for (let page = 0; page < 50; page++) {
    const html = (await s.client.request('GET', middle, { expect: 200 })).body.toString('utf8');
    middle = /<a href="([^"]+)" rel="next">/.exec(html)![1]!.replaceAll('&amp;', '&');
  }
  const pages: [string, string][] = [
    ['repository list, first page', '/'],
    ['repository list, page 26 of 51', `/?after=catalog/r${String(Math.floor(repos / 2)).padStart(5, '0')}`],
    ['repository list, search', '/?q=r0499'],
    [`repository page, ${tags} tags, newest`, `/r/${TAG_REPO}`],
    [`repository page, ${tags} tags, page 51`, middle],
    ['repository page, tag filter', `/r/${TAG_REPO}?q=v999`],
    ['manifest page', `/r/${TAG_REPO}/-/manifest/v5000`],
  ];
  // Server CPU per page is the figure a loaded machine disturbs least (wall times queue behind other work).
  const rows: string[][] = [['page', 'clients', 'bytes', 'req/s', 'p50 ms', 'p99 ms', 'server CPU ms/page']];
  for (const concurrency of opts.concurrency.split(',').map(Number)) {
    for (const [label, path] of pages) {
      const bytes = (await s.client.request('GET', path, { expect: 200 })).body.length;
      const cpuBefore = processCpuSeconds(target.pid);
      const r = await runRate({ url: target.url, method: 'GET', path, headers: {}, durationMs: Number(opts.seconds) * 1000, expect: 200, concurrency, threads: 1 });
      const cpuMs = ((processCpuSeconds(target.pid) - cpuBefore) / r.requests) * 1000;
      rows.push([label, String(concurrency), String(bytes), r.perSecond.toFixed(0), r.p50Ms.toFixed(2), r.p99Ms.toFixed(2), cpuMs.toFixed(2)]);
    }
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const row of rows) process.stdout.write(`| ${row.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |\n`);
} finally {
  await target.stop();
  if (opts.keep) process.stdout.write(`kept ${root}\n`);
  else await removeDir(root);
}
