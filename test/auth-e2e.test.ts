// End to end: real clients through the token flow against a Berth server with
// `auth: token`, users made with the built `berth user` command. skopeo with --creds
// and with `skopeo login`, berth's own client, and podman.

import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signingKeyPath } from '../auth/keys.js';
import { startBerthProcess, type BerthProcess } from './helpers/berth-process.js';
import { buildBusyboxImage, e2eTools, skopeo, tempDir, type BuiltManifestImage } from './helpers/images.js';
import { startTestServer, type TestServer } from './helpers/server.js';

const run = promisify(execFile);
const MAIN = fileURLToPath(new URL('../dist/src/cli/main.js', import.meta.url));

/** Runs the built `berth`, optionally with stdin; a failure carries its stderr. */
function berth(args: string[], stdin?: string, env?: NodeJS.ProcessEnv): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = execFile(process.execPath, [MAIN, ...args], { env }, (err, stdout, stderr) =>
      err ? reject(Object.assign(err, { message: `berth ${args.join(' ')}: ${stderr}`, stderr })) : resolve({ stdout, stderr }),
    );
    child.stdin!.end(stdin ?? '');
  });
}

describe('berth serve with auth from the environment', () => {
  it('runs the token flow with BERTH_AUTH=token and BERTH_ANONYMOUS_PULL=1, key file 0600', async () => {
    // startBerthProcess passes this process's environment on to `berth serve`.
    const settings = { BERTH_AUTH: 'token', BERTH_ANONYMOUS_PULL: '1' };
    const saved = Object.fromEntries(Object.keys(settings).map((k) => [k, process.env[k]]));
    Object.assign(process.env, settings);
    let proc: BerthProcess | undefined;
    try {
      proc = await startBerthProcess();
      const ping = await fetch(`${proc.url}/v2/`);
      expect(ping.status).toBe(401);
      expect(ping.headers.get('www-authenticate')).toBe(
        `Bearer realm="${proc.url}/auth/token",service="berth-registry"`,
      );
      const res = await fetch(`${proc.url}/auth/token?service=berth-registry&scope=repository:any/app:pull,push`);
      const { token, scope } = (await res.json()) as { token: string; scope: string };
      expect(scope).toBe('repository:any/app:pull');
      const tags = await fetch(`${proc.url}/v2/any/app/tags/list`, { headers: { authorization: `Bearer ${token}` } });
      expect(tags.status).toBe(404);
      expect((await stat(signingKeyPath(proc.dataDir))).mode & 0o777).toBe(0o600);
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
      await proc?.destroy();
    }
  });
});

const hasTools = e2eTools('umoci', 'skopeo', 'busybox');

describe.skipIf(!hasTools)('token auth with real clients', () => {
  let server: TestServer;
  let work: string;
  let image: BuiltManifestImage;
  let host: string;

  beforeAll(async () => {
    if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: build first with \`npx tsc -p tsconfig.json\``);
    work = await tempDir('berth-auth-e2e-');
    image = await buildBusyboxImage(join(work, 'layout'));
    server = await startTestServer({ auth: { mode: 'token' } });
    host = server.url.replace('http://', '');
    // The CLI writes to the same database the running server reads (SQLite WAL).
    await berth(['user', 'add', 'alice', '--admin', '--password-stdin', '--data', server.dataDir], 'alice-password\n');
    await berth(['user', 'add', 'bob', '--password-stdin', '--data', server.dataDir], 'bob-password\n');
  });
  afterAll(async () => {
    await server?.destroy();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('manages users with berth user add, ls, passwd and rm', async () => {
    const { stdout } = await berth(['user', 'add', 'temp', '--group', 'ci', '--data', server.dataDir]);
    const password = /password for temp: (\S+)/.exec(stdout)?.[1];
    expect(password).toBeTruthy();
    const list = JSON.parse((await berth(['user', 'ls', '--json', '--data', server.dataDir])).stdout) as { name: string; admin: boolean; groups: string[] }[];
    expect(list.map((u) => [u.name, u.admin, u.groups])).toEqual([
      ['alice', true, []],
      ['bob', false, []],
      ['temp', false, ['ci']],
    ]);
    await expect(skopeo('list-tags', '--tls-verify=false', '--creds', `temp:${password}`, `docker://${host}/temp/none`)).rejects.toThrow(
      /unknown|not found/i,
    );
    await berth(['user', 'passwd', 'temp', '--password-stdin', '--data', server.dataDir], 'changed-password\n');
    await expect(skopeo('list-tags', '--tls-verify=false', '--creds', `temp:${password}`, `docker://${host}/temp/none`)).rejects.toThrow(
      /unauthorized|authentication/i,
    );
    await berth(['user', 'rm', 'temp', '--data', server.dataDir]);
    await expect(berth(['user', 'rm', 'temp', '--data', server.dataDir])).rejects.toMatchObject({ stderr: /no user "temp"/ });
    await expect(berth(['user', 'add', 'alice', '--password-stdin', '--data', server.dataDir], 'whatever-password')).rejects.toMatchObject({
      stderr: /already exists/,
    });
  });

  it('pushes and pulls with skopeo --creds, within what the rules allow', async () => {
    await skopeo('copy', '--quiet', '--dest-tls-verify=false', '--dest-creds', 'bob:bob-password', image.skopeoRef, `docker://${host}/bob/busybox:1`);
    const out = join(work, 'pulled');
    await skopeo('copy', '--quiet', '--src-tls-verify=false', '--src-creds', 'bob:bob-password', `docker://${host}/bob/busybox:1`, `oci:${out}:1`);
    const inspected = JSON.parse(
      await skopeo('inspect', '--raw', '--tls-verify=false', '--creds', 'bob:bob-password', `docker://${host}/bob/busybox:1`),
    ) as { layers: { digest: string }[] };
    expect(inspected.layers.map((l) => l.digest)).toEqual(image.manifest.layers.map((l) => l.digest));

    // Without credentials, with a wrong password, and into someone else's namespace: refused.
    // (skopeo words the 401 to its anonymous HEAD, which has no body, as "denied".)
    await expect(
      skopeo('copy', '--quiet', '--dest-tls-verify=false', image.skopeoRef, `docker://${host}/bob/busybox:2`),
    ).rejects.toThrow(/unauthorized|authentication required|denied/i);
    await expect(
      skopeo('copy', '--quiet', '--dest-tls-verify=false', '--dest-creds', 'bob:wrong-password', image.skopeoRef, `docker://${host}/bob/busybox:2`),
    ).rejects.toThrow(/unauthorized|invalid user name or password/i);
    await expect(
      skopeo('copy', '--quiet', '--dest-tls-verify=false', '--dest-creds', 'bob:bob-password', image.skopeoRef, `docker://${host}/alice/busybox:1`),
    ).rejects.toThrow(/denied/i);
  });

  it('logs in with skopeo login and pushes and pulls with the stored credentials', async () => {
    const authfile = join(work, 'auth.json');
    await expect(
      run('skopeo', ['login', '--tls-verify=false', '--authfile', authfile, '-u', 'alice', '-p', 'wrong-password', host]),
    ).rejects.toThrow();
    await run('skopeo', ['login', '--tls-verify=false', '--authfile', authfile, '-u', 'alice', '-p', 'alice-password', host]);
    await skopeo('copy', '--quiet', '--dest-tls-verify=false', '--authfile', authfile, image.skopeoRef, `docker://${host}/team/busybox:latest`);
    // A copy between repositories mounts the layers (pull on the source, push on the target).
    await skopeo('copy', '--quiet', '--src-tls-verify=false', '--dest-tls-verify=false', '--authfile', authfile, `docker://${host}/team/busybox:latest`, `docker://${host}/other/busybox:latest`);
    const out = join(work, 'pulled-login');
    await skopeo('copy', '--quiet', '--src-tls-verify=false', '--authfile', authfile, `docker://${host}/other/busybox:latest`, `oci:${out}:latest`);
    const tags = JSON.parse(await skopeo('list-tags', '--tls-verify=false', '--authfile', authfile, `docker://${host}/other/busybox`)) as { Tags: string[] };
    expect(tags.Tags).toEqual(['latest']);
    const digest = (await skopeo('inspect', '--format', '{{.Digest}}', '--tls-verify=false', '--authfile', authfile, `docker://${host}/other/busybox:latest`)).trim();
    expect(digest).toBe(image.digest);
  });

  it('pushes and pulls with berth login, push and pull', async () => {
    // berth's own login store, and no docker config of the machine running the tests.
    const env = { ...process.env, BERTH_AUTH_FILE: join(work, 'berth-auth.json'), DOCKER_CONFIG: join(work, 'docker') };
    const client = (args: string[], stdin?: string) => berth(args, stdin, env);
    await expect(client(['login', host, '-u', 'bob', '--password-stdin'], 'wrong-password\n')).rejects.toThrow();
    await client(['login', host, '-u', 'bob', '--password-stdin'], 'bob-password\n');
    await client(['push', '--quiet', image.layout, `${host}/bob/berth:1`]);
    await client(['pull', '--quiet', `${host}/bob/berth:1`, join(work, 'berth-pulled')]);
    await expect(client(['push', '--quiet', image.layout, `${host}/alice/berth:1`])).rejects.toThrow(/denied/i);
    await expect(client(['catalog', host])).rejects.toThrow(/denied/i);
  });

  // podman keeps its images in a store of its own under the test's directory (vfs: no
  // overlay mounts needed, so it works as root in a container too).
  it.skipIf(!e2eTools('podman'))('pushes and pulls with podman login', async () => {
    const authfile = join(work, 'podman-auth.json');
    const store = ['--root', join(work, 'podman-root'), '--runroot', join(work, 'podman-run'), '--storage-driver', 'vfs'];
    const podman = (...args: string[]) => run('podman', [...store, ...args]);
    await expect(podman('login', '--tls-verify=false', '--authfile', authfile, '-u', 'bob', '-p', 'wrong-password', host)).rejects.toThrow();
    await podman('login', '--tls-verify=false', '--authfile', authfile, '-u', 'bob', '-p', 'bob-password', host);
    await podman('pull', '--tls-verify=false', '--authfile', authfile, `${host}/bob/busybox:1`);
    await podman('push', '--tls-verify=false', '--authfile', authfile, `${host}/bob/busybox:1`, `docker://${host}/bob/podman:1`);
    const tags = JSON.parse(await skopeo('list-tags', '--tls-verify=false', '--creds', 'bob:bob-password', `docker://${host}/bob/podman`)) as { Tags: string[] };
    expect(tags.Tags).toEqual(['1']);
  });
});
