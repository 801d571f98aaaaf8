// What `berth` prints: errors as JSON on stderr under --json, progress with an overall
// total and an ETA (per line off a terminal, bars on one, run under `script` for a real
// terminal), a clean line after Ctrl-C, one help style, and the README's list of the
// commands that take --quiet and --json.

import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatDuration, TransferTotals } from '../src/cli/client-output.js';
import { registerCommands } from '../src/cli/commands/index.js';
import { BERTH_MAIN, berthCli, berthOk } from './helpers/berth-cli.js';
import { buildBusyboxImage, e2eTools, tempDir } from './helpers/images.js';
import { startTestServer, type TestServer } from './helpers/server.js';
import { freePort } from './helpers/reference-registry.js';

const hasScript = e2eTools('script');

describe('errors under --json', () => {
  it('are one JSON object on stderr, for berth failures and for usage errors', async () => {
    const port = await freePort();
    const r = await berthCli(['tags', `127.0.0.1:${port}/app`, '--json']);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(JSON.parse(r.stderr).error).toContain(`cannot reach 127.0.0.1:${port}`);
    const usage = await berthCli(['tags', '--bogus', '--json']);
    expect(usage.code).not.toBe(0);
    expect(JSON.parse(usage.stderr)).toEqual({ error: "unknown option '--bogus'" });
    const plain = await berthCli(['tags', `127.0.0.1:${port}/app`]);
    expect(plain.stderr).toMatch(/^berth: cannot reach/);
  });
});

describe('overall progress', () => {
  it('counts blobs and bytes and estimates the time left from this run\'s rate', () => {
    const t0 = Date.now();
    const totals = new TransferTotals();
    totals.plan(3, 30 * 1024 * 1024);
    totals.finish('sha256:a', 10 * 1024 * 1024, false); // already there: done, but says nothing of the rate
    totals.update('sha256:b', 5 * 1024 * 1024, true);
    // 5 MiB moved in 5 s: 1 MiB/s, 15 MiB left, 15 s.
    expect(totals.line(t0 + 5000)).toBe('1/3 blobs  15.0 MiB / 30.0 MiB  1.0 MiB/s  ETA 15s');
    expect(formatDuration(65)).toBe('1m05s');
    expect(formatDuration(7380)).toBe('2h03m');
  });
});

describe.skipIf(!e2eTools('umoci', 'busybox'))('progress of a push', () => {
  let server: TestServer;
  let work: string;
  let layout: string;
  beforeAll(async () => {
    work = await tempDir('berth-output-');
    layout = (await buildBusyboxImage(join(work, 'layout'), { extraFiles: { 'etc/a': 'a\n' } })).layout;
    server = await startTestServer();
  });
  afterAll(async () => {
    await server?.destroy();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('off a terminal: the plan, then each blob with the running total', async () => {
    const host = new URL(server.url).host;
    const r = await berthOk(['push', `oci:${layout}`, `${host}/out/app:1`]);
    const lines = r.stderr.trim().split('\n');
    expect(lines[0]).toMatch(/^copying 3 blobs, [\d.]+ (KiB|MiB)$/);
    expect(lines.filter((l) => / done {2}\[\d\/3 blobs, /.test(l))).toHaveLength(3);
    expect(lines.some((l) => l.includes('[3/3 blobs,'))).toBe(true);
    expect(r.stdout).toMatch(/^Pushed .* \(3 blobs, [\d.]+ (KiB|MiB)\)\n$/);
  });

  it.skipIf(!hasScript)('on a terminal: a total bar with the ETA', async () => {
    const host = new URL(server.url).host;
    const out = await inTerminal(`node ${BERTH_MAIN} push oci:${layout} ${host}/out/tty:1`);
    expect(out).toMatch(/total +█+ +3\/3 blobs {2}[\d.]+ (KiB|MiB) \/ [\d.]+ (KiB|MiB) {2}[\d.]+ (B|KiB|MiB|GiB)\/s {2}ETA 0s/);
  });
});

/** Runs a shell command under `script` (a real terminal); resolves all it printed and its exit status. */
function inTerminal(command: string, onOutput?: (text: string, input: NodeJS.WritableStream) => void): Promise<string> {
  return inTerminalWithStatus(command, onOutput).then((r) => r.output);
}

function inTerminalWithStatus(command: string, onOutput?: (text: string, input: NodeJS.WritableStream) => void): Promise<{ output: string; code: number | null }> {
  return new Promise((resolve, reject) => {
    const child = spawn('script', ['-qfec', `stty cols 200 rows 40; ${command}`, '/dev/null']);
    let text = '';
    child.stdout.on('data', (d: Buffer) => {
      text += d.toString();
      onOutput?.(text, child.stdin);
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ output: text, code }));
  });
}

describe.skipIf(!hasScript)('Ctrl-C during a transfer', () => {
  let stalling: Server;
  let work: string;
  beforeAll(async () => {
    work = await tempDir('berth-ctrlc-');
    // A registry that sends the first MiB of a 64 MiB layer, then nothing.
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
    const layerSize = 64 * 1024 * 1024;
    const layerDigest = `sha256:${'1'.repeat(64)}`;
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${createHash('sha256').update(config).digest('hex')}`, size: config.length },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layerDigest, size: layerSize }],
      }),
    );
    stalling = createServer((req, res) => {
      if (req.url === '/v2/') return res.end('{}');
      if (req.url?.includes('/manifests/')) {
        res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json', 'content-length': manifest.length });
        return res.end(manifest);
      }
      if (req.url?.endsWith(layerDigest)) {
        res.writeHead(200, { 'content-length': layerSize });
        res.write(Buffer.alloc(1024 * 1024));
        return; // and stall
      }
      res.writeHead(200, { 'content-length': config.length });
      res.end(config);
    });
    await new Promise<void>((resolve) => stalling.listen(0, '127.0.0.1', resolve));
  });
  afterAll(async () => {
    stalling?.closeAllConnections();
    stalling?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('takes the bars down and leaves the cursor on a clean line', async () => {
    const port = (stalling.address() as { port: number }).port;
    let sent = false;
    const { output: out, code } = await inTerminalWithStatus(`node ${BERTH_MAIN} pull 127.0.0.1:${port}/slow/app:1 oci:${join(work, 'slow')}`, (text, input) => {
      if (!sent && /[1-9][\d.]* (KiB|MiB) \/ 64\.0 MiB/.test(text)) {
        sent = true;
        input.write('\x03'); // Ctrl-C, as typed: the terminal sends SIGINT to berth
      }
    });
    expect(sent).toBe(true);
    expect(out).toContain('\x1b[?25h'); // the cursor is shown again
    expect(out.endsWith('interrupted\r\n')).toBe(true);
    expect(code).toBe(130); // script -e passes berth's status on
  }, 30_000);
});

describe('one help style', () => {
  const program = new Command();
  registerCommands(program);

  it('descriptions start in lower case (or with a name such as YAML or Go), end without a period, and write placeholders in capitals', () => {
    const problems: string[] = [];
    for (const cmd of program.commands) {
      const texts = [[cmd.name(), cmd.description()], ...cmd.options.map((o) => [`${cmd.name()} ${o.long}`, o.description])];
      for (const [where, text] of texts) {
        if (!/^(?:[a-z0-9`'"(/-]|[A-Z]{2,}|(?:Go|Linux|Docker|Berth)\b)/.test(text!)) problems.push(`${where}: starts with a capital: ${text}`);
        if (/\.$/.test(text!)) problems.push(`${where}: ends with a period: ${text}`);
        if (/host\[:port\]|\brepo\[:tag/.test(text!)) problems.push(`${where}: placeholder in lower case: ${text}`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('the commands the README says take --quiet and --json do', async () => {
    const readme = await readFile(join(import.meta.dirname, '..', 'README.md'), 'utf8');
    const claim = (flags: string) => {
      const line = readme.split('\n').find((l) => l.startsWith(`${flags}:`));
      expect(line, `README line starting "${flags}:"`).toBeDefined();
      return [...line!.matchAll(/`([a-z]+)`/g)].map((m) => m[1]!);
    };
    for (const [flags, wanted] of [
      ['`--quiet` and `--json`', ['--quiet', '--json']],
      ['`--json` only', ['--json']],
    ] as const) {
      const names = claim(flags);
      expect(names.length).toBeGreaterThan(3);
      for (const name of names) {
        const cmd = program.commands.find((c) => c.name() === name);
        expect(cmd, name).toBeDefined();
        const longs = cmd!.options.map((o) => o.long);
        expect(['--quiet', '--json'].filter((f) => longs.includes(f)), name).toEqual(wanted);
      }
    }
  });
});
