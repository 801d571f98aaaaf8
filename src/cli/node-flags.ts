// V8 heap settings `berth serve` runs with. V8 reads them only when the process starts,
// so every launcher passes them to node itself: the `berth` script's shebang, `npm
// start`, the Dockerfile, the systemd unit and the benchmark (test/ops-deploy.test.ts
// checks that they all agree with this list).
//
// --initial-old-space-size=64: V8 counts the request-body chunks Node allocates outside
//   its heap against the old generation's allocation limit, and with the limit it sets
//   for a heap of Berth's size (about 26 MB for 10 MB live) every 16 MB of upload started
//   a full mark-compact: about 60 per GiB pushed, half a second of the main thread.
//   A 64 MB floor under the limit leaves them to cheap scavenges (1 GiB streamed push:
//   about 440 -> 700 MB/s).
// --max-semi-space-size=4: the young generation stays at 8 MB instead of growing to 32 MB
//   under a burst of small requests, which kept a server's memory that much higher
//   afterwards (peak while pushing 2 GiB after the benchmark's request-rate tests: about
//   200 -> 155 MB). It costs about 10% of blob HEAD throughput.

export const SERVE_NODE_FLAGS = ['--initial-old-space-size=64', '--max-semi-space-size=4'] as const;

/** The flags this process was started without. */
export function missingNodeFlags(): string[] {
  return SERVE_NODE_FLAGS.filter((flag) => !process.execArgv.includes(flag));
}
