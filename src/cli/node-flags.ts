// V8 heap settings `berth serve` runs with. V8 reads them only when the process starts,
// so every launcher passes them to node itself: the `berth` script's shebang, `npm
// start`, the Dockerfile, the systemd unit and the benchmark (test/ops-deploy.test.ts
// checks that they all agree with this list).
//
// --expose-gc: the server runs a young-generation collection every 2 MiB of request
//   body (src/server/heap.ts says why): a 1 GiB streamed push went from about 440 to
//   700 MB/s, with a few MB of body chunks in flight instead of 32.
// --max-semi-space-size=4: the young generation stays at 8 MB instead of growing to 32 MB
//   under a burst of small requests and staying there.
// --heap-growing-percent=100: the old generation is collected when it reaches twice
//   what was live after the last collection (Go's default, GOGC=100, is the same rule),
//   where V8 lets a busy heap grow to four times: after the benchmark's request-rate
//   tests the server held about 45 MB of dead objects for seconds.
// Together (with the 2 MiB scavenges): peak RSS while pushing 2 GiB right after the
// request-rate tests went from about 200 to 116 MB, on a fresh server from 125 to 90 MB.
// Blob HEAD throughput fell about 10%, still about 8 times the reference registry's.

export const SERVE_NODE_FLAGS = ['--max-semi-space-size=4', '--heap-growing-percent=100', '--expose-gc'] as const;

/** The flags this process was started without. */
export function missingNodeFlags(): string[] {
  return SERVE_NODE_FLAGS.filter((flag) => !process.execArgv.includes(flag));
}
