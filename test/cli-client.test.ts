// The built `berth` client commands, end to end: against Berth with token auth (login,
// push, pull, cp with mounts, tags, catalog, inspect, digest, tag, rm, logout), against
// Berth with Basic auth using credentials from docker's config.json, and against the
// reference registry. Each test uses its own login store and docker config directory.

import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildBusyboxImage, buildMultiPlatformIndex, e2eTools, readLayoutBlob, skopeo, tempDir, type BuiltManifestImage } from './helpers/images.js';
import { startReferenceRegistry, type ReferenceRegistry } from './helpers/reference-registry.js';
import { sha256, startTestServer, type TestServer } from './helpers/server.js';
import { OciLayout } from '../src/client/index.js';

const MAIN = fileURLToPath(new URL('../dist/src/cli/main.js', import.meta.url));

interface Run {
  stdout: string;
  stderr: string;
  code: number;
}

let env: NodeJS.ProcessEnv = {};

/** Runs the built `berth` with the test's login store; resolves whatever the exit code. */
function berth(args: string[], stdin = ''): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [MAIN, ...args], { env: { ...process.env, ...env } }, (err, stdout, stderr) =>
      resolve({ stdout, stderr, code: err ? ((err as { code?: number }).code ?? 1) : 0 }),
    );
    child.stdin!.end(stdin);
  });
}

async function ok(args: string[], stdin = ''): Promise<Run> {
  const r = await berth(args, stdin);
  if (r.code !== 0) throw new Error(`berth ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r;
}

const canRun = e2eTools('umoci', 'skopeo', 'busybox');

describe.skipIf(!canRun)('berth client commands against Berth with token auth', () => {
  let server: TestServer;
  let work: string;
  let image: BuiltManifestImage;
  let host: string;

  beforeAll(async () => {
    if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: build first with \`npx tsc -p tsconfig.json\``);
    work = await tempDir('berth-cli-');
    env = { BERTH_AUTH_FILE: join(work, 'berth-auth.json'), DOCKER_CONFIG: join(work, 'docker') };
    image = await buildBusyboxImage(join(work, 'layout'), { extraFiles: { 'etc/motd': 'hi\n' } });
    server = await startTestServer({ auth: { mode: 'token' } });
    host = new URL(server.url).host;
    await ok(['user', 'add', 'alice', '--admin', '--password-stdin', '--data', server.dataDir], 'alice-password\n');
  });
  afterAll(async () => {
    await server?.destroy();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('says to log in on a 401, refuses a wrong password, and logs in', async () => {
    const anonymous = await berth(['push', join(work, 'layout'), `${host}/team/app:1`]);
    expect(anonymous.code).not.toBe(0);
    expect(anonymous.stderr).toContain(`401 from ${host}: run \`berth login ${host}\``);

    const wrong = await berth(['login', host, '-u', 'alice', '--password-stdin'], 'nope\n');
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toContain(`401 from ${host}`);
    expect(existsSync(join(env.DOCKER_CONFIG!, 'config.json'))).toBe(false);

    const login = await ok(['login', host, '-u', 'alice', '--password-stdin'], 'alice-password\n');
    // Saved where docker keeps them, so docker and berth share one login.
    expect(login.stdout).toContain(`Logged in to ${host} as alice (saved in ${join(env.DOCKER_CONFIG!, 'config.json')})`);
    const stored = JSON.parse(await readFile(join(env.DOCKER_CONFIG!, 'config.json'), 'utf8'));
    expect(Buffer.from(stored.auths[host].auth, 'base64').toString()).toBe('alice:alice-password');
  });

  it('pushes, lists, inspects, tags, copies with mounts, pulls and deletes', async () => {
    const pushed = JSON.parse((await ok(['push', join(work, 'layout'), `${host}/team/app:1`, '--json'])).stdout);
    expect(pushed.digest).toBe(image.digest);

    expect((await ok(['tags', `${host}/team/app`])).stdout.trim()).toBe('1');
    expect(JSON.parse((await ok(['catalog', host, '--json'])).stdout).repositories).toContain('team/app');
    expect((await ok(['digest', `${host}/team/app:1`])).stdout.trim()).toBe(image.digest);

    const inspected = JSON.parse((await ok(['inspect', `${host}/team/app:1`, '--json'])).stdout);
    expect(inspected.config.architecture).toBe('amd64');
    expect(inspected.manifest.layers).toHaveLength(2);
    const text = (await ok(['inspect', `${host}/team/app:1`])).stdout;
    expect(text).toMatch(/Layers:\s+2,/);
    expect((await ok(['inspect', `${host}/team/app:1`, '--raw'])).stdout).toBe(image.raw.toString());

    expect((await ok(['tag', `${host}/team/app:1`, 'stable', '-q'])).stdout.trim()).toBe(image.digest);
    expect((await ok(['tags', `${host}/team/app`])).stdout.trim().split('\n').sort()).toEqual(['1', 'stable']);

    // stderr is not a terminal here: one line per blob, which says how it got there.
    const cp = await ok(['cp', `${host}/team/app:1`, `${host}/other/app:1`]);
    expect(cp.stderr.match(/mounted/g)).toHaveLength(3);
    expect(cp.stderr).not.toMatch(/done/);

    const out = join(work, 'pulled');
    expect((await ok(['pull', `${host}/other/app:1`, out, '-q'])).stdout.trim()).toBe(image.digest);
    for (const d of image.manifest.layers) expect((await readLayoutBlob(out, d.digest)).equals(await readLayoutBlob(image.layout, d.digest))).toBe(true);
    expect(JSON.parse(await skopeo('inspect', '--raw', `oci:${out}:1`)).layers).toHaveLength(2);

    await ok(['delete', `${host}/team/app:stable`]);
    expect((await ok(['tags', `${host}/team/app`])).stdout.trim()).toBe('1');
    await ok(['delete', `${host}/team/app@${image.digest}`]);
    const gone = await berth(['digest', `${host}/team/app:1`]);
    expect(gone.code).not.toBe(0);
    expect(gone.stderr).toMatch(/MANIFEST_UNKNOWN|manifest unknown/);
  });

  it('pulls the platform asked for from a multi-platform image', async () => {
    const idx = await buildMultiPlatformIndex(join(work, 'multi'));
    await ok(['push', idx.layout, `${host}/team/multi:1`]);
    const listing = (await ok(['inspect', `${host}/team/multi:1`])).stdout;
    expect(listing).toContain('linux/amd64');
    expect(listing).toContain('linux/arm64');
    const arm = JSON.parse((await ok(['pull', `${host}/team/multi:1`, join(work, 'arm'), '--platform', 'linux/arm64', '--json'])).stdout);
    expect(arm.digest).toBe(idx.children[1]!.digest);
    expect(arm.indexDigest).toBe(idx.digest);
  });

  it('lists the referrers of an image', async () => {
    const subject = JSON.parse((await ok(['digest', `${host}/team/multi:1`, '--json'])).stdout);
    // An artifact (an empty config, one small layer) whose subject is that index, pushed from a layout.
    const layout = await OciLayout.create(join(work, 'artifact'));
    const empty = Buffer.from('{}');
    const note = Buffer.from('signed by the test\n');
    const desc = (mediaType: string, data: Buffer) => ({ mediaType, digest: sha256(data), size: data.length });
    await layout.writeBuffer(sha256(empty), empty);
    await layout.writeBuffer(sha256(note), note);
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        artifactType: 'application/vnd.example.note',
        config: desc('application/vnd.oci.empty.v1+json', empty),
        layers: [desc('text/plain', note)],
        subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size },
      }),
    );
    await layout.writeBuffer(sha256(manifest), manifest);
    await layout.setTag('note', desc('application/vnd.oci.image.manifest.v1+json', manifest));
    await ok(['push', layout.dir, `${host}/team/multi:note`]);

    const listed = JSON.parse((await ok(['referrers', `${host}/team/multi:1`, '--json'])).stdout);
    expect(listed.subject).toBe(subject.digest);
    expect(listed.manifests.map((m: { digest: string; artifactType: string }) => [m.digest, m.artifactType])).toEqual([
      [sha256(manifest), 'application/vnd.example.note'],
    ]);
    const filtered = JSON.parse((await ok(['referrers', `${host}/team/multi:1`, '--artifact-type', 'application/other', '--json'])).stdout);
    expect(filtered.manifests).toEqual([]);
  });

  it('logs out, after which the registry asks again', async () => {
    await ok(['logout', host]);
    const r = await berth(['tags', `${host}/team/app`]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`berth login ${host}`);
  });
});

describe.skipIf(!canRun)('berth with credentials from docker config.json (Basic auth)', () => {
  let server: TestServer;
  let work: string;
  beforeAll(async () => {
    work = await tempDir('berth-cli-basic-');
    env = { BERTH_AUTH_FILE: join(work, 'berth-auth.json'), DOCKER_CONFIG: join(work, 'docker') };
    server = await startTestServer({ auth: { mode: 'basic' } });
    await ok(['user', 'add', 'carol', '--admin', '--password-stdin', '--data', server.dataDir], 'carol-password\n');
  });
  afterAll(async () => {
    await server?.destroy();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('reads a base64 auth entry as docker login writes it', async () => {
    const host = new URL(server.url).host;
    const image = await buildBusyboxImage(join(work, 'layout'));
    const denied = await berth(['push', image.layout, `${host}/carol/app:1`]);
    expect(denied.stderr).toContain(`401 from ${host}: run \`berth login ${host}\``);
    await mkdir(env.DOCKER_CONFIG!, { recursive: true });
    const auth = Buffer.from('carol:carol-password').toString('base64');
    await writeFile(join(env.DOCKER_CONFIG!, 'config.json'), JSON.stringify({ auths: { [host]: { auth } } }));
    expect((await ok(['push', image.layout, `${host}/carol/app:1`, '-q'])).stdout.trim()).toBe(image.digest);
  });
});

describe.skipIf(!canRun || !e2eTools('docker-registry'))('berth against the reference registry', () => {
  let reg: ReferenceRegistry;
  let work: string;
  beforeAll(async () => {
    reg = await startReferenceRegistry();
    work = await tempDir('berth-cli-ref-');
    env = { BERTH_AUTH_FILE: join(work, 'berth-auth.json'), DOCKER_CONFIG: join(work, 'docker') };
  });
  afterAll(async () => {
    await reg?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('moves an image between a directory, the reference registry and a docker archive', async () => {
    const image = await buildBusyboxImage(join(work, 'layout'));
    await ok(['push', image.layout, `${reg.host}/demo/bb:1`]);
    const archive = join(work, 'bb.tar');
    await ok(['pull', `${reg.host}/demo/bb:1`, archive]);
    await ok(['push', archive, `${reg.host}/demo/from-archive:1`]);
    const cfg = JSON.parse(await skopeo('inspect', '--config', '--tls-verify=false', `docker://${reg.host}/demo/from-archive:1`));
    expect(cfg.rootfs.diff_ids).toHaveLength(1);
    // The reference registry cannot delete a tag alone: the error names the digest to delete instead.
    const rmTag = await berth(['delete', `${reg.host}/demo/bb:1`]);
    expect(rmTag.code).not.toBe(0);
    expect(rmTag.stderr).toContain(`berth delete ${reg.host}/demo/bb@${image.digest}`);
    await ok(['delete', `${reg.host}/demo/bb@${image.digest}`]);
    expect((await berth(['digest', `${reg.host}/demo/bb:1`])).code).not.toBe(0);
  });
});
