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

export interface Progress {
  listener?: ProgressListener;
  stop(): void;
}

/** Progress display for a transfer, chosen by the flags and whether stderr is a terminal. */
export function startProgress(flags: CommonFlags): Progress {
  if (flags.quiet || flags.json) return { stop() {} };
  if (!process.stderr.isTTY) {
    return {
      listener: (e) => {
        const line = describeEvent(e);
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
      format: (options, params, payload: { id: string; state: string }) => {
        const width = options.barsize ?? 30;
        const filled = Math.round(params.progress * width);
        const bar = '█'.repeat(filled) + '░'.repeat(width - filled);
        const elapsed = Math.max((Date.now() - params.startTime) / 1000, 0.001);
        const rate = payload.state ? '' : `  ${formatBytes(params.value / elapsed)}/s`;
        return `${payload.id}  ${bar}  ${formatBytes(params.value)} / ${formatBytes(params.total)}${payload.state ? `  ${payload.state}` : rate}`;
      },
    },
    Presets.shades_classic,
  );
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
      switch (e.type) {
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
    },
    stop: () => multi.stop(),
  };
}

function describeEvent(e: ProgressEvent): string | undefined {
  switch (e.type) {
    case 'blob-done':
      return `${short(e.digest)}  ${formatBytes(e.size)}  done`;
    case 'blob-skipped':
      return `${short(e.digest)}  ${formatBytes(e.size)}  ${e.reason === 'mounted' ? 'mounted' : 'already there'}`;
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

/** Runs a transfer with progress shown, making sure the bars are taken down on failure. */
export async function withProgress<T>(flags: CommonFlags, run: (listener?: ProgressListener) => Promise<T>): Promise<T> {
  const progress = startProgress(flags);
  try {
    return await run(progress.listener);
  } finally {
    progress.stop();
  }
}
