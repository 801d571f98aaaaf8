// What the client commands share: the common options (--insecure/--tls-verify,
// --ca-cert, --authfile, --quiet, --json), the client options they turn into, progress
// on screen, and printing results.
//
// Progress: on a terminal, one cli-progress bar per blob with bytes and rate; when
// stderr is not a terminal, one line per finished blob; nothing with --quiet or --json.
// Results go to stdout (JSON with --json), progress and notes to stderr.

import { MultiBar, Presets, type SingleBar } from 'cli-progress';
import type { Command } from 'commander';
import type { ClientOptions, ProgressEvent, ProgressListener } from '../client/index.js';
import { formatBytes } from './sizes.js';

export interface OutputFlags {
  quiet?: boolean;
  json?: boolean;
}

export interface CommonFlags extends OutputFlags {
  insecure?: boolean;
  tlsVerify?: boolean;
  caCert?: string[];
  authfile?: string;
}

/** Adds --quiet and --json, which every command that prints a result takes. */
export function withOutputFlags(cmd: Command): Command {
  return cmd.option('-q, --quiet', 'print only the result').option('--json', 'print the result as JSON (errors too, on stderr)');
}

/** skopeo's `--tls-verify=false`: a boolean flag that also takes a value. */
function parseBool(value: string): boolean {
  if (/^(true|1|yes)$/i.test(value)) return true;
  if (/^(false|0|no)$/i.test(value)) return false;
  throw new Error(`expected true or false, got ${value}`);
}

const collect = (value: string, previous: string[] = []) => [...previous, value];

/** Adds the options of every command that talks to a registry. */
export function withClientFlags(cmd: Command): Command {
  return withOutputFlags(
    cmd
      .option('--insecure', 'allow plain HTTP and skip certificate checks for the registry (same as --tls-verify=false)')
      .option('--tls-verify [bool]', 'verify the registry\'s certificate and require HTTPS (default true)', parseBool)
      .option('--ca-cert <file>', 'trust this CA certificate (PEM) too; repeatable', collect)
      .option('--authfile <file>', 'read credentials from this file first (podman/skopeo auth.json format)'),
  );
}

export function clientOptions(flags: CommonFlags): ClientOptions {
  return {
    insecure: !!flags.insecure || flags.tlsVerify === false,
    caCert: flags.caCert,
    authfile: flags.authfile,
    userAgent: 'berth/0.1',
  };
}

const short = (digest: string) => digest.slice(digest.indexOf(':') + 1, digest.indexOf(':') + 13);

/** Seconds as `9s`, `1m05s` or `2h03m`. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** The whole transfer: what it holds, how much is done, and how fast this run moves bytes. */
export class TransferTotals {
  blobs = 0;
  bytes = 0;
  doneBlobs = 0;
  private readonly perBlob = new Map<string, number>();
  /** Bytes moved by this run (not skipped or resumed ones): the rate and ETA come from these. */
  private moved = 0;
  private readonly started = Date.now();

  plan(blobs: number, bytes: number): void {
    this.blobs = blobs;
    this.bytes = bytes;
  }

  /** `bytes` of blob `digest` are there; `transferred` when this run moved them. */
  update(digest: string, bytes: number, transferred: boolean): void {
    const before = this.perBlob.get(digest) ?? 0;
    this.perBlob.set(digest, bytes);
    if (transferred) this.moved += Math.max(0, bytes - before);
  }

  finish(digest: string, size: number, transferred: boolean): void {
    this.update(digest, size, transferred);
    this.doneBlobs++;
  }

  get doneBytes(): number {
    let n = 0;
    for (const b of this.perBlob.values()) n += b;
    return n;
  }

  /** `3/5 blobs  12.0 MiB / 40.0 MiB  3.1 MiB/s  ETA 9s`. */
  line(now = Date.now()): string {
    const elapsed = Math.max((now - this.started) / 1000, 0.001);
    const rate = this.moved / elapsed;
    const remaining = Math.max(this.bytes - this.doneBytes, 0);
    const eta = remaining === 0 ? '0s' : rate > 0 ? formatDuration(remaining / rate) : '--';
    return `${this.doneBlobs}/${this.blobs} blobs  ${formatBytes(this.doneBytes)} / ${formatBytes(this.bytes)}  ${formatBytes(rate)}/s  ETA ${eta}`;
  }
}

export interface Progress {
  listener?: ProgressListener;
  stop(): void;
}

/** Keeps `totals` up to date with an event. */
function account(totals: TransferTotals, e: ProgressEvent): void {
  switch (e.type) {
    case 'plan':
      totals.plan(e.blobs, e.bytes);
      break;
    case 'blob-start':
      totals.update(e.digest, e.resumeAt, false);
      break;
    case 'blob-progress':
      totals.update(e.digest, e.bytes, true);
      break;
    case 'blob-done':
      totals.finish(e.digest, e.size, true);
      break;
    case 'blob-skipped':
      totals.finish(e.digest, e.size, false);
      break;
    default:
      break;
  }
}

/**
 * Progress display for a transfer, chosen by the flags and whether stderr is a terminal:
 * a bar per blob under a total with its ETA on a terminal; otherwise a line per finished
 * blob with the running total.
 */
export function startProgress(flags: CommonFlags): Progress {
  if (flags.quiet || flags.json) return { stop() {} };
  const totals = new TransferTotals();
  if (!process.stderr.isTTY) {
    return {
      listener: (e) => {
        account(totals, e);
        const line = describeEvent(e, totals);
        if (line) process.stderr.write(`${line}\n`);
      },
      stop() {},
    };
  }
  const multi = new MultiBar(
    {
      stream: process.stderr,
      hideCursor: true,
      clearOnComplete: false,
      barsize: 20,
      format: (options, params, payload: { id: string; state: string }) => {
        const width = options.barsize ?? 30;
        const filled = Math.round(params.progress * width);
        const bar = '█'.repeat(filled) + '░'.repeat(width - filled);
        if (payload.id === 'total') return `total         ${bar}  ${totals.line()}`; // as wide as a short digest
        const elapsed = Math.max((Date.now() - params.startTime) / 1000, 0.001);
        const rate = payload.state ? '' : `  ${formatBytes(params.value / elapsed)}/s`;
        return `${payload.id}  ${bar}  ${formatBytes(params.value)} / ${formatBytes(params.total)}${payload.state ? `  ${payload.state}` : rate}`;
      },
    },
    Presets.shades_classic,
  );
  let total: SingleBar | undefined;
  const bars = new Map<string, SingleBar>();
  const bar = (digest: string, size: number) => {
    let b = bars.get(digest);
    if (!b) {
      b = multi.create(size, 0, { id: short(digest), state: '' });
      bars.set(digest, b);
    }
    return b;
  };
  return {
    listener: (e: ProgressEvent) => {
      account(totals, e);
      switch (e.type) {
        case 'plan':
          total = multi.create(Math.max(e.bytes, 1), 0, { id: 'total', state: '' });
          break;
        case 'blob-start':
          bar(e.digest, e.size).update(e.resumeAt, { state: e.resumeAt ? `resuming at ${formatBytes(e.resumeAt)}` : '' });
          break;
        case 'blob-progress':
          bar(e.digest, e.size).update(e.bytes, { state: '' });
          break;
        case 'blob-done':
          bar(e.digest, e.size).update(e.size, { state: 'done' });
          break;
        case 'blob-skipped':
          bar(e.digest, e.size).update(e.size, { state: e.reason === 'mounted' ? 'mounted' : 'already there' });
          break;
        case 'retry':
          multi.log(`${e.what}: ${e.error}; retrying in ${e.delayMs} ms\n`);
          break;
        case 'manifest':
          break;
      }
      total?.update(totals.doneBytes);
    },
    stop: () => multi.stop(),
  };
}

function describeEvent(e: ProgressEvent, totals: TransferTotals): string | undefined {
  const overall = () => `  [${totals.doneBlobs}/${totals.blobs} blobs, ${formatBytes(totals.doneBytes)} of ${formatBytes(totals.bytes)}]`;
  switch (e.type) {
    case 'plan':
      return `copying ${e.blobs} blobs, ${formatBytes(e.bytes)}`;
    case 'blob-done':
      return `${short(e.digest)}  ${formatBytes(e.size)}  done${overall()}`;
    case 'blob-skipped':
      return `${short(e.digest)}  ${formatBytes(e.size)}  ${e.reason === 'mounted' ? 'mounted' : 'already there'}${overall()}`;
    case 'retry':
      return `${e.what}: ${e.error}; retrying in ${e.delayMs} ms`;
    case 'manifest':
      return `${short(e.digest)}  manifest ${e.reference}`;
    default:
      return undefined;
  }
}

/** Prints a result: `json` as JSON with --json, else `text` (a line or lines) unless empty. */
export function printResult(flags: CommonFlags, json: unknown, text: string): void {
  if (flags.json) process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
  else if (text) process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}

/**
 * Runs a transfer with progress shown, making sure the bars are taken down on failure and
 * on Ctrl-C (which then ends berth with 130, as a shell reports SIGINT), so the terminal is
 * left on a clean line with its cursor.
 */
export async function withProgress<T>(flags: CommonFlags, run: (listener?: ProgressListener) => Promise<T>): Promise<T> {
  const progress = startProgress(flags);
  const interrupted = () => {
    progress.stop();
    process.stderr.write('interrupted\n');
    process.exit(130);
  };
  process.once('SIGINT', interrupted);
  try {
    return await run(progress.listener);
  } finally {
    process.removeListener('SIGINT', interrupted);
    progress.stop();
  }
}
