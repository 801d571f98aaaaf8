// Summarises a V8 CPU profile (what `npm run bench -- --cpu-prof DIR` writes for the
// Berth server): self time by function and by file or package, biggest first.
//
//   node dist/bench/profile-summary.js DIR/CPU.*.cpuprofile [top=30]
//
// "(idle)" is the event loop waiting; time in other threads (libuv's file system pool,
// V8's garbage collector helpers) is not in this profile at all: compare the server CPU
// column of the bench table with the non-idle total here to see how much there is.

import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const [file, topArg] = process.argv.slice(2);
if (!file) {
  process.stderr.write('usage: node dist/bench/profile-summary.js FILE.cpuprofile [top]\n');
  process.exit(2);
}
const top = Number(topArg ?? 30);
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const nodes = new Map(profile.nodes.map((n) => [n.id, n]));

const selfTime = new Map<number, number>();
let total = 0;
profile.samples.forEach((id, i) => {
  const dt = profile.timeDeltas[i] ?? 0;
  total += dt;
  selfTime.set(id, (selfTime.get(id) ?? 0) + dt);
});

const byFunction = new Map<string, number>();
const byFile = new Map<string, number>();
const add = (map: Map<string, number>, key: string, t: number) => map.set(key, (map.get(key) ?? 0) + t);
for (const [id, t] of selfTime) {
  const { functionName, url, lineNumber } = nodes.get(id)!.callFrame;
  const path = url.replace(/^file:\/\//, '');
  const short = path.split('/').slice(-2).join('/');
  add(byFunction, `${functionName || '(anonymous)'} ${short}${short ? `:${lineNumber + 1}` : ''}`, t);
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(path)?.[1];
  add(byFile, pkg ? `package ${pkg}` : path.replace(/^.*\/dist\//, 'dist/') || functionName, t);
}

const lines = (map: Map<string, number>, n: number) =>
  [...map]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([key, t]) => `${((t / total) * 100).toFixed(1).padStart(5)}%  ${(t / 1000).toFixed(0).padStart(7)} ms  ${key}`)
    .join('\n');

process.stdout.write(
  `${file}: ${(total / 1e6).toFixed(2)} s sampled\n\nby function (self time)\n${lines(byFunction, top)}\n\nby file or package\n${lines(byFile, 20)}\n`,
);
