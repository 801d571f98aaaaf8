// `berth` finds credentials where podman, skopeo and docker put them, and trusts a private
// CA: `skopeo login` then `berth push` against Berth with token auth; the order of the
// auth files; docker's credential helpers (a small helper script on PATH); `berth login`
// writing where docker writes, or to --authfile. Over TLS: the self-signed certificate's
// hint names --ca-cert, then --ca-cert, certs.d and --tls-verify=false each work, and a
// loopback registry is reached over HTTPS when it speaks it.

import { execFile } from 'node:child_process';
import { chmod, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { berthCli, berthOk } from './helpers/berth-cli.js';
import { buildBusyboxImage, e2eTools, tempDir, type BuiltManifestImage } from './helpers/images.js';
import { startTestServer, type TestServer } from './helpers/server.js';

const run = promisify(execFile);
const canRun = e2eTools('umoci', 'skopeo', 'busybox', 'openssl');

let work: string;
let image: BuiltManifestImage;
beforeAll(async () => {
  if (!canRun) return;
  work = await tempDir('berth-creds-');
  image = await buildBusyboxImage(join(work, 'layout'));
});
afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

/** An environment with every credentials location inside `dir`, none of the machine's. */
function isolated(dir: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    REGISTRY_AUTH_FILE: '',
    XDG_RUNTIME_DIR: join(dir, 'run'),
    XDG_CONFIG_HOME: join(dir, 'config'),
    DOCKER_CONFIG: join(dir, 'docker'),
    BERTH_AUTH_FILE: join(dir, 'berth.json'),
    ...extra,
  };
}

const authEntry = (user: string, password: string) => ({ auth: Buffer.from(`${user}:${password}`).toString('base64') });

describe.skipIf(!canRun)('credentials from podman, skopeo and docker', () => {
  let server: TestServer;
  let host: string;
  beforeAll(async () => {
    server = await startTestServer({ auth: { mode: 'token' } });
    host = new URL(server.url).host;
    await berthOk(['user', 'add', 'alice', '--admin', '--password-stdin', '--data', server.dataDir], { stdin: 'alice-password\n' });
  });
  afterAll(() => server?.destroy());

  it('pushes with the credentials `skopeo login` saved', async () => {
    const dir = join(work, 'skopeo-login');
    const env = isolated(dir);
    await mkdir(env.XDG_RUNTIME_DIR!, { recursive: true });
    // (skopeo 1.9 writes to $DOCKER_CONFIG when that is set: leave it out for skopeo.)
    const skopeoEnv = { ...process.env, ...env };
    delete skopeoEnv.DOCKER_CONFIG;
    await run('skopeo', ['login', '--tls-verify=false', '-u', 'alice', '-p', 'alice-password', host], { env: skopeoEnv });
    // skopeo wrote ${XDG_RUNTIME_DIR}/containers/auth.json, which berth reads.
    expect(JSON.parse(await readFile(join(env.XDG_RUNTIME_DIR!, 'containers', 'auth.json'), 'utf8')).auths[host]).toBeDefined();
    const pushed = await berthOk(['push', '-q', `oci:${image.layout}:latest`, `${host}/alice/app:1`], { env });
    expect(pushed.stdout.trim()).toBe(image.digest);
  }, 90_000);

  it('reads the auth files in podman order: REGISTRY_AUTH_FILE, XDG_RUNTIME_DIR, ~/.config/containers, docker, berth', async () => {
    const dir = join(work, 'order');
    const files = {
      registryAuthFile: join(dir, 'registry-auth.json'),
      runtime: join(dir, 'run', 'containers', 'auth.json'),
      config: join(dir, 'config', 'containers', 'auth.json'),
      docker: join(dir, 'docker', 'config.json'),
      berth: join(dir, 'berth.json'),
    };
    const order = Object.values(files);
    // Only the file being tested holds the right password; every later one a wrong one.
    for (const [i, file] of order.entries()) {
      for (const [j, other] of order.entries()) {
        await mkdir(join(other, '..'), { recursive: true });
        if (j < i) await writeFile(other, JSON.stringify({ auths: {} }));
        else await writeFile(other, JSON.stringify({ auths: { [host]: authEntry('alice', j === i ? 'alice-password' : 'wrong') } }));
      }
      const r = await berthCli(['tags', `${host}/alice/app`], { env: isolated(dir, { REGISTRY_AUTH_FILE: files.registryAuthFile }) });
      expect(r.stderr, `${file} should be read at position ${i + 1}`).toBe('');
      expect(r.stdout.trim()).toBe('1');
    }
    // --authfile comes before all of them.
    await writeFile(files.registryAuthFile, JSON.stringify({ auths: { [host]: authEntry('alice', 'wrong') } }));
    const authfile = join(dir, 'given.json');
    await writeFile(authfile, JSON.stringify({ auths: { [host]: authEntry('alice', 'alice-password') } }));
    const env = isolated(dir, { REGISTRY_AUTH_FILE: files.registryAuthFile });
    expect((await berthCli(['tags', `${host}/alice/app`], { env })).code).not.toBe(0);
    expect((await berthOk(['tags', `${host}/alice/app`, '--authfile', authfile], { env })).stdout.trim()).toBe('1');
  }, 90_000);

  it("runs docker's credential helper (credHelpers, credsStore) to read and to store", async () => {
    const dir = join(work, 'helper');
    const bin = join(dir, 'bin');
    const store = join(dir, 'helper-store.json');
    await mkdir(bin, { recursive: true });
    // A credential helper as docker runs it: the action as argument, the server (or JSON) on stdin.
    await writeFile(
      join(bin, 'docker-credential-berthtest'),
      `#!/bin/sh
input=$(cat)
case "$1" in
  store) printf '%s' "$input" > '${store}' ;;
  get) if [ -f '${store}' ]; then cat '${store}'; else echo 'credentials not found in native keychain'; exit 1; fi ;;
  erase) rm -f '${store}' ;;
esac
`,
    );
    await chmod(join(bin, 'docker-credential-berthtest'), 0o755);
    const env = isolated(dir, { PATH: `${bin}:${process.env.PATH}` });
    await mkdir(env.DOCKER_CONFIG!, { recursive: true });
    for (const config of [{ credHelpers: { [host]: 'berthtest' } }, { credsStore: 'berthtest' }]) {
      await writeFile(join(env.DOCKER_CONFIG!, 'config.json'), JSON.stringify(config));
      await rm(store, { force: true });
      expect((await berthCli(['tags', `${host}/alice/app`], { env })).stderr).toContain(`berth login ${host}`);
      const login = await berthOk(['login', host, '-u', 'alice', '--password-stdin'], { env, stdin: 'alice-password\n' });
      expect(login.stdout).toContain('saved in docker-credential-berthtest');
      expect(JSON.parse(await readFile(store, 'utf8'))).toEqual({ ServerURL: host, Username: 'alice', Secret: 'alice-password' });
      // Nothing in config.json's auths: the helper holds the password.
      expect(JSON.parse(await readFile(join(env.DOCKER_CONFIG!, 'config.json'), 'utf8')).auths).toBeUndefined();
      expect((await berthOk(['tags', `${host}/alice/app`], { env })).stdout.trim()).toBe('1');
      await berthOk(['logout', host], { env });
      expect((await berthCli(['tags', `${host}/alice/app`], { env })).code).not.toBe(0);
    }
  }, 90_000);

  it('takes a credential helper that is not installed as knowing nothing, and goes on to the next file', async () => {
    const dir = join(work, 'missing-helper');
    const env = isolated(dir);
    await mkdir(env.DOCKER_CONFIG!, { recursive: true });
    await writeFile(join(env.DOCKER_CONFIG!, 'config.json'), JSON.stringify({ credsStore: 'not-installed-anywhere' }));
    await writeFile(env.BERTH_AUTH_FILE!, JSON.stringify({ auths: { [host]: authEntry('alice', 'alice-password') } }));
    expect((await berthOk(['tags', `${host}/alice/app`], { env })).stdout.trim()).toBe('1');
  });

  it('berth login writes where docker writes, or to --authfile', async () => {
    const dir = join(work, 'login');
    const env = isolated(dir);
    await berthOk(['login', host, '-u', 'alice', '--password-stdin'], { env, stdin: 'alice-password\n' });
    const config = JSON.parse(await readFile(join(env.DOCKER_CONFIG!, 'config.json'), 'utf8'));
    expect(config.auths[host]).toEqual(authEntry('alice', 'alice-password'));
    const authfile = join(dir, 'elsewhere.json');
    const r = await berthOk(['login', host, '-u', 'alice', '--password-stdin', '--authfile', authfile], { env, stdin: 'alice-password\n' });
    expect(r.stdout).toContain(`saved in ${authfile}`);
    expect(JSON.parse(await readFile(authfile, 'utf8')).auths[host]).toEqual(authEntry('alice', 'alice-password'));
    // skopeo reads the file berth wrote.
    const tags = await run('skopeo', ['list-tags', '--tls-verify=false', '--authfile', authfile, `docker://${host}/alice/app`]);
    expect(JSON.parse(tags.stdout).Tags).toEqual(['1']);
  }, 90_000);
});

describe.skipIf(!canRun)('TLS: a private CA, certs.d, --tls-verify=false, HTTPS first', () => {
  let server: TestServer;
  let host: string;
  let cert: string;
  beforeAll(async () => {
    const dir = join(work, 'cert');
    await berthOk(['cert', '127.0.0.1', '--out', dir, '--days', '2']);
    cert = join(dir, '127.0.0.1.crt');
    server = await startTestServer({ tls: { cert, key: join(dir, '127.0.0.1.key') } });
    host = new URL(server.url).host;
  });
  afterAll(() => server?.destroy());

  it("refuses a certificate it cannot verify, naming --ca-cert", async () => {
    const r = await berthCli(['push', `oci:${image.layout}:latest`, `${host}/tls/app:1`]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`cannot reach ${host} (https://${host})`);
    expect(r.stderr).toContain('pass its CA with --ca-cert FILE');
    expect(r.stderr).toContain(`/etc/containers/certs.d/${host}/ca.crt`);
  });

  it('trusts a CA given with --ca-cert (and so reaches a loopback registry over HTTPS)', async () => {
    const pushed = await berthOk(['push', '-q', '--ca-cert', cert, `oci:${image.layout}:latest`, `${host}/tls/app:1`]);
    expect(pushed.stdout.trim()).toBe(image.digest);
  });

  it('trusts the *.crt files of certs.d/<host:port>/ (BERTH_CERTS_DIRS replaces /etc/containers/certs.d:/etc/docker/certs.d)', async () => {
    const containers = join(work, 'certs', 'containers');
    const docker = join(work, 'certs', 'docker');
    await mkdir(join(containers, host), { recursive: true });
    await mkdir(join(docker, host), { recursive: true });
    const env = { BERTH_CERTS_DIRS: `${containers}:${docker}` };
    expect((await berthCli(['tags', `${host}/tls/app`], { env })).code).not.toBe(0);
    await writeFile(join(docker, host, 'ca.crt'), await readFile(cert));
    expect((await berthOk(['tags', `${host}/tls/app`], { env })).stdout.trim()).toBe('1');
    await rm(join(docker, host, 'ca.crt'));
    await writeFile(join(containers, host, 'registry.crt'), await readFile(cert));
    expect((await berthOk(['tags', `${host}/tls/app`], { env })).stdout.trim()).toBe('1');
  });

  it('skips the check with --tls-verify=false or --insecure', async () => {
    expect((await berthOk(['tags', '--tls-verify=false', `${host}/tls/app`])).stdout.trim()).toBe('1');
    expect((await berthOk(['tags', '--insecure', `${host}/tls/app`])).stdout.trim()).toBe('1');
  });
});
