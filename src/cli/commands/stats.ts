// `berth stats [--no-stream] [CONTAINER...]`: each running container's CPU %, memory use
// and limit, and process count, from its cgroup; refreshed every second until Ctrl-C, or
// once with --no-stream. CPU % is of one CPU, over the sampling interval, as docker.

import type { Command } from 'commander';
import { totalmem } from 'node:os';
import { Containers } from '../../runtime/containers.js';
import { isRunning, sampleStats, type ContainerStats } from '../../runtime/lifecycle.js';
import { RuntimeStore } from '../../runtime/store.js';
import { formatBytes } from '../sizes.js';
import { printTable } from './images.js';
import { berthFails, findContainers, withRoot, type RootFlags } from './container.js';

const INTERVAL_MS = 1000;
/** --no-stream still samples twice for the CPU figure; half a second is enough. */
const ONE_SHOT_MS = 500;

function rows(stats: ContainerStats[]): string[][] {
  return stats.map((s) => {
    const limit = s.usage.memoryLimit ?? totalmem();
    const used = s.usage.memoryBytes;
    return [
      s.id.slice(0, 12),
      s.name,
      s.cpuPercent === undefined ? '--' : `${s.cpuPercent.toFixed(2)}%`,
      `${used === undefined ? '--' : formatBytes(used)} / ${formatBytes(limit)}`,
      used === undefined ? '--' : `${((used / limit) * 100).toFixed(2)}%`,
      s.usage.pids === undefined ? '--' : String(s.usage.pids),
    ];
  });
}

export function register(program: Command): void {
  withRoot(program.command('stats [container...]').description("show running containers' CPU, memory and process count"))
    .option('--no-stream', 'print once and exit')
    .option('--json', 'print JSON (implies --no-stream)')
    .action(berthFails(async (names: string[], flags: RootFlags & { stream: boolean; json?: boolean }) => {
      const store = new RuntimeStore(flags.root);
      const pick = async () => (names.length > 0 ? await findContainers(store, names) : await new Containers(store).list()).filter(isRunning);
      if (flags.json || !flags.stream) {
        const stats = await sampleStats(await pick(), ONE_SHOT_MS);
        if (flags.json) process.stdout.write(`${JSON.stringify(stats, null, 2)}\n`);
        else printTable(['CONTAINER ID', 'NAME', 'CPU %', 'MEM USAGE / LIMIT', 'MEM %', 'PIDS'], rows(stats));
        return;
      }
      for (;;) {
        const stats = await sampleStats(await pick(), INTERVAL_MS);
        // Clear the screen and home the cursor, as docker stats does.
        process.stdout.write('\x1b[2J\x1b[H');
        printTable(['CONTAINER ID', 'NAME', 'CPU %', 'MEM USAGE / LIMIT', 'MEM %', 'PIDS'], rows(stats));
      }
    }));
}
