// HTTPS: `berth cert` makes a self-signed certificate (with openssl), skopeo pushes and
// pulls over TLS trusting it as ca.crt (and refuses without it), and SIGHUP makes a
// running `berth serve` pick up a renewed certificate while a bad one is refused.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { connect } from 'node:tls';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { buildBusyboxImage, e2eTools, skopeo, tempDir } from './helpers/images.js';
import { startTestServer, type TestServer } from './helpers/server.js';

const root = join(import.meta.dirname, '..');
const bin = join(root, 'dist', 'src', 'cli', 'main.js');
const run = promisify(execFile);
const hasOpenssl = ['/usr/bin/openssl', '/bin/openssl'].some(existsSync);
if (!hasOpenssl) {
  if (process.env.BERTH_REQUIRE_E2E === '1') throw new Error('TLS tests need openssl (not installed) and BERTH_REQUIRE_E2E=1');
  process.stderr.write('skipping: TLS tests need openssl (not installed)\n');
}

let work: string;
beforeAll(async () => {
  if (!existsSync(bin)) execFileSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: root });
  work = await tempDir('berth-tls-');
});
afterAll(() => rm(work, { recursive: true, force: true }));

/** Runs `berth cert` and returns the certificate and key paths. */
async function berthCert(dir: string, ...hosts: string[]): Promise<{ cert: string; key: string }> {
  await run(process.execPath, [bin, 'cert', ...hosts, '--out', dir, '--days', '2']);
  return { cert: join(dir, `${hosts[0]}.crt`), key: join(dir, `${hosts[0]}.key`) };
}

/** SHA-256 fingerprint of the certificate a TLS server presents now. */
function presentedFingerprint(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, rejectUnauthorized: false, servername: 'localhost' }, () => {
      resolve(socket.getPeerCertificate().fingerprint256);
      socket.end();
    });
    socket.on('error', reject);
  });
}

async function fileFingerprint(cert: string): Promise<string> {
  const { X509Certificate } = await import('node:crypto');
  return new X509Certificate(await readFile(cert)).fingerprint256;
}

describe.skipIf(!hasOpenssl)('berth cert', () => {
  it('makes a self-signed certificate for the names and addresses given', async () => {
    const dir = join(work, 'cert');
    const files = await berthCert(dir, 'registry.test', '127.0.0.1');
    const { X509Certificate } = await import('node:crypto');
    const x509 = new X509Certificate(await readFile(files.cert));
    expect(x509.subjectAltName).toBe('DNS:registry.test, IP Address:127.0.0.1');
    expect(x509.issuer).toBe(x509.subject); // self-signed
    expect(x509.checkPrivateKey((await import('node:crypto')).createPrivateKey(await readFile(files.key)))).toBe(true);
  });
});

describe.skipIf(!hasOpenssl || !e2eTools('skopeo', 'umoci'))('TLS round trip with skopeo', () => {
  let server: TestServer;
  let certs: string;

  beforeAll(async () => {
    const files = await berthCert(join(work, 'server'), 'localhost', '127.0.0.1');
    server = await startTestServer({ tls: files });
    // skopeo (like docker's certs.d) trusts the CA certificates named *.crt in a directory.
    certs = join(work, 'trust');
    await mkdir(certs, { recursive: true });
    await copyFile(files.cert, join(certs, 'ca.crt'));
  });
  afterAll(() => server?.destroy());

  it('pushes and pulls over HTTPS with the certificate trusted, and refuses without it', async () => {
    expect(server.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const host = new URL(server.url).host;
    const image = await buildBusyboxImage(join(work, 'layout'), { tag: 'v1' });
    await skopeo('copy', '--quiet', '--dest-cert-dir', certs, image.skopeoRef, `docker://${host}/tls/busybox:v1`);
    const out = join(work, 'pulled');
    await skopeo('copy', '--quiet', '--src-cert-dir', certs, `docker://${host}/tls/busybox:v1`, `oci:${out}:v1`);
    const index = JSON.parse(await readFile(join(out, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    expect(index.manifests[0]!.digest).toBe(image.digest);
    const inspected = JSON.parse(await skopeo('inspect', '--raw', '--cert-dir', certs, `docker://${host}/tls/busybox:v1`)) as object;
    expect(inspected).toEqual(image.manifest);

    // Without the CA, the certificate is not trusted: TLS verification really happens.
    const refused = await skopeo('inspect', '--raw', `docker://${host}/tls/busybox:v1`).then(
      () => '',
      (err: { stderr?: string }) => err.stderr ?? 'failed',
    );
    expect(refused).toMatch(/certificate|x509|tls/i);
  });
});

describe.skipIf(!hasOpenssl)('SIGHUP', () => {
  let child: ChildProcess | undefined;
  afterAll(() => {
    child?.kill('SIGKILL');
  });

  it('reloads a renewed certificate without a restart, and keeps the old one when the new is bad', async () => {
    const dir = join(work, 'reload');
    const files = await berthCert(dir, 'localhost', '127.0.0.1');
    const data = join(work, 'reload-data');
    child = spawn(process.execPath, [bin, 'serve', '--listen', '127.0.0.1:0', '--data', data, '--tls-cert', files.cert, '--tls-key', files.key], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    const waitFor = async (text: string, from: number) => {
      for (let i = 0; i < 500 && !out.slice(from).includes(text); i++) await new Promise((r) => setTimeout(r, 20));
      expect(out.slice(from)).toContain(text);
    };
    await waitFor('listening', 0);
    const port = Number(/"listen":"127\.0\.0\.1:(\d+)"/.exec(out)![1]);
    const original = await presentedFingerprint(port);
    expect(original).toBe(await fileFingerprint(files.cert));

    // Renew in place (what certbot or cert-manager do), then SIGHUP.
    await berthCert(dir, 'localhost', '127.0.0.1');
    const renewed = await fileFingerprint(files.cert);
    expect(renewed).not.toBe(original);
    let mark = out.length;
    child.kill('SIGHUP');
    await waitFor('TLS certificate reloaded', mark);
    expect(await presentedFingerprint(port)).toBe(renewed);

    // A broken key file: the reload fails, the server keeps serving the renewed certificate.
    await writeFile(files.key, 'not a key\n');
    mark = out.length;
    child.kill('SIGHUP');
    await waitFor('TLS reload failed', mark);
    expect(await presentedFingerprint(port)).toBe(renewed);
    expect(child.exitCode).toBeNull();
  });
});
