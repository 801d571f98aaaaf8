// `berth build` and `berth commit` end to end, through the `berth` command (build first:
// tsc): Dockerfiles built on the bundled runtime as root, into a local store, run with
// `berth run`, pushed to a Berth server started here and read back with skopeo and
// umoci. The base image is busybox, made with umoci. Needs root, util-linux, overlayfs,
// umoci, skopeo and busybox-static: skipped with a message otherwise, failed under
// BERTH_REQUIRE_E2E=1.

import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync, gzipSync } from 'node:zlib';
import pino from 'pino';
import tar from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatPlatform, hostPlatform, push } from '../src/client/index.js';
import { startServer, type RunningServer } from '../src/server/serve.js';
import { berthCli, type CliRun } from './helpers/berth-cli.js';
import { helloElf } from './helpers/hello-elf.js';
import { buildBusyboxImage, e2eTools, skopeo, tempDir } from './helpers/images.js';
import { runtimeAvailable } from './helpers/runtime.js';
import { stackLayers, tarLayer } from './helpers/runtime-images.js';

type Result = CliRun;
const berth = (args: string[], env: NodeJS.ProcessEnv = {}) => berthCli(args, { env });

const APPLETS = ['sh', 'cat', 'echo', 'ls', 'pwd', 'rm', 'test', 'id', 'stat'];

/** The last line of `berth build`'s output: the image digest. */
const digestOf = (r: Result) => r.stdout.trim().split('\n').pop()!;

/** The step headers of a build's output, each with whether the cache served it. */
function steps(out: string): { step: string; cached: boolean }[] {
  const lines = out.split('\n');
  const result: { step: string; cached: boolean }[] = [];
  lines.forEach((line, i) => {
    if (/^(\[\d+\/\d+\] )?STEP /.test(line)) result.push({ step: line, cached: lines[i + 1] === '--> CACHED' });
  });
  return result;
}

describe.skipIf(!(runtimeAvailable() && e2eTools('skopeo')))('berth build and berth commit', () => {
  let dir: string;
  let root: string;
  let server: RunningServer;
  let registry: string;
  let base: string;

  beforeAll(async () => {
    dir = await tempDir('berth-build-');
    root = join(dir, 'root');
    const layout = join(dir, 'layout');
    await buildBusyboxImage(layout, { tag: 'bare', extraFiles: { 'etc/motd': 'welcome\n' } });
    const links = await tarLayer([{ name: 'bin/', type: 'directory' }, ...APPLETS.map((a) => ({ name: `bin/${a}`, type: 'symlink' as const, linkname: 'busybox' }))]);
    await stackLayers(layout, 'bare', 'latest', [links]);
    server = await startServer({ listen: '127.0.0.1:0', data: join(dir, 'registry'), logger: pino({ level: 'silent' }) });
    registry = `127.0.0.1:${server.port}`;
    base = `${registry}/library/busybox:latest`;
    await push(layout, base, { sourceTag: 'latest' });
  });

  afterAll(async () => {
    await server?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  let contexts = 0;
  /** A build context holding `files` (path -> contents; a Buffer for binary). */
  async function context(files: Record<string, string | Buffer>): Promise<string> {
    const ctx = join(dir, `ctx-${contexts++}`);
    for (const [path, contents] of Object.entries(files)) {
      await mkdir(dirname(join(ctx, path)), { recursive: true });
      await writeFile(join(ctx, path), contents, { mode: 0o755 });
    }
    return ctx;
  }

  const build = (ctx: string, ...flags: string[]) => berth(['build', '--root', root, ...flags, ctx]);
  const run = (...args: string[]) => berth(['run', '--root', root, '--rm', '-q', ...args]);

  // The test's static program is x86-64 code.
  it.skipIf(process.arch !== 'x64')('FROM scratch + ADD hello / + CMD ["/hello"] runs and prints', async () => {
    const ctx = await context({ hello: helloElf('Hello from Docker!\n'), Dockerfile: 'FROM scratch\nADD hello /\nCMD ["/hello"]\n' });
    const r = await build(ctx, '-t', 'localhost/hello:1');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('STEP 1/3: FROM scratch\nSTEP 2/3: ADD hello /\n');
    expect((await run('localhost/hello:1')).stdout).toBe('Hello from Docker!\n');
    const listed = await berth(['images', '--root', root, '--json']);
    expect(JSON.parse(listed.stdout).map((i: { name: string }) => i.name)).toContain('localhost/hello:1');
  });

  it('ENTRYPOINT shell form lets the shell expand ENV; exec form does not (hello Docker vs hello $name)', async () => {
    const shell = await context({ Dockerfile: `FROM ${base}\nENV name Docker\nENTRYPOINT echo "hello $name"\n` });
    const exec = await context({ Dockerfile: `FROM ${base}\nENV name Docker\nENTRYPOINT ["echo", "hello $name"]\n` });
    expect((await build(shell, '-t', 'localhost/entry:shell')).code).toBe(0);
    expect((await build(exec, '-t', 'localhost/entry:exec')).code).toBe(0);
    expect((await run('localhost/entry:shell')).stdout).toBe('hello Docker\n');
    expect((await run('localhost/entry:exec')).stdout).toBe('hello $name\n');
    // CMD arguments after the image replace CMD and go to an exec-form ENTRYPOINT
    expect((await run('localhost/entry:exec', 'again')).stdout).toBe('hello $name again\n');
    // --entrypoint replaces ENTRYPOINT (and with it the image's CMD)
    expect((await run('--entrypoint', 'echo', 'localhost/entry:shell', 'replaced')).stdout).toBe('replaced\n');
  });

  it('WORKDIR /test + WORKDIR demo + RUN pwd prints /test/demo', async () => {
    const ctx = await context({ Dockerfile: `FROM ${base}\nWORKDIR /test\nWORKDIR demo\nRUN pwd\n` });
    const r = await build(ctx, '-t', 'localhost/workdir:1');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('STEP 4/4: RUN pwd\n/test/demo\n');
  });

  it('ADD test.tar.gz / unpacks it; COPY hello test/ after WORKDIR /root lands in /root/test/hello', async () => {
    const pack = tar.pack();
    pack.entry({ name: 'from-tar/', type: 'directory', mode: 0o755 });
    pack.entry({ name: 'from-tar/inside.txt', mode: 0o644 }, 'unpacked\n');
    pack.finalize();
    const chunks: Buffer[] = [];
    for await (const c of pack) chunks.push(Buffer.from(c as Uint8Array));
    const ctx = await context({
      'test.tar.gz': gzipSync(Buffer.concat(chunks)),
      hello: 'hi\n',
      'src/b.txt': 'bzip2\n',
      'src/x.txt': 'xz\n',
      Dockerfile: `FROM ${base}\nADD test.tar.gz /\nADD b.tar.bz2 x.tar.xz /more/\nWORKDIR /root\nCOPY hello test/\n`,
    });
    await promisify(execFile)('tar', ['-cjf', join(ctx, 'b.tar.bz2'), '-C', join(ctx, 'src'), 'b.txt']);
    await promisify(execFile)('tar', ['-cJf', join(ctx, 'x.tar.xz'), '-C', join(ctx, 'src'), 'x.txt']);
    expect((await build(ctx, '-t', 'localhost/add:1')).code).toBe(0);
    const r = await run('localhost/add:1', 'sh', '-c', 'cat /from-tar/inside.txt /root/test/hello /more/b.txt /more/x.txt; test -e /test.tar.gz || echo no-archive');
    expect(r.stdout).toBe('unpacked\nhi\nbzip2\nxz\nno-archive\n');
  });

  it('RUN rm of a base file makes a whiteout and the file is gone', async () => {
    const ctx = await context({ Dockerfile: `FROM ${base}\nRUN rm /etc/motd\n` });
    const r = await build(ctx, '-t', 'localhost/rm:1');
    expect(r.code).toBe(0);
    expect((await run(`${base}`, 'cat', '/etc/motd')).stdout).toBe('welcome\n');
    expect((await run('localhost/rm:1', 'sh', '-c', 'test -e /etc/motd && echo present || echo gone')).stdout).toBe('gone\n');
    // The layer itself: the OCI whiteout entry
    const out = join(dir, 'rm-layout');
    expect((await berth(['build', '--root', root, '--output', `oci:${out}`, ctx])).code).toBe(0);
    const index = JSON.parse(await readFile(join(out, 'index.json'), 'utf8'));
    const manifest = JSON.parse(await readFile(join(out, 'blobs', 'sha256', index.manifests[0].digest.slice(7)), 'utf8'));
    const top = manifest.layers[manifest.layers.length - 1].digest.slice(7);
    const names: string[] = [];
    const extract = tar.extract();
    extract.end(gunzipSync(await readFile(join(out, 'blobs', 'sha256', top))));
    for await (const entry of extract) {
      names.push(entry.header.name);
      entry.resume();
    }
    expect(names).toEqual(['etc/', 'etc/.wh.motd']);
  });

  it('a directory removed and made again by RUN becomes opaque: nothing from below shows through', async () => {
    const ctx = await context({
      Dockerfile: `FROM ${base}\nRUN mkdir -p /data/sub && echo old > /data/old && echo old > /data/sub/old\nRUN rm -rf /data && mkdir /data && echo new > /data/new\n`,
    });
    expect((await build(ctx, '-t', 'localhost/opaque:1')).code).toBe(0);
    expect((await run('localhost/opaque:1', 'ls', '-R', '/data')).stdout).toBe('/data:\nnew\n');
  });

  it('a multi-stage build copies one file from the builder stage', async () => {
    const ctx = await context({
      Dockerfile: [
        `FROM ${base} AS builder`,
        'RUN echo built-in-stage-one > /artifact.txt && echo junk > /junk.txt',
        'FROM scratch',
        'COPY --from=builder /artifact.txt /artifact.txt',
        'COPY --from=builder /bin/busybox /bin/busybox',
        `COPY --from=${base} /etc/motd /motd-from-image`,
        'CMD ["/bin/busybox", "cat", "/artifact.txt"]',
      ].join('\n'),
    });
    const r = await build(ctx, '-t', 'localhost/multi:1');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('[1/2] STEP 1/2: FROM');
    expect(r.stdout).toContain('[2/2] STEP 2/5: COPY --from=builder /artifact.txt /artifact.txt');
    expect((await run('localhost/multi:1')).stdout).toBe('built-in-stage-one\n');
    expect((await run('localhost/multi:1', '/bin/busybox', 'cat', '/motd-from-image')).stdout).toBe('welcome\n');
    expect((await run('localhost/multi:1', '/bin/busybox', 'ls', '/')).stdout.split('\n')).not.toContain('junk.txt');
    // --target stops at the named stage
    expect((await build(ctx, '-t', 'localhost/multi:builder', '--target', 'builder')).code).toBe(0);
    expect((await run('localhost/multi:builder', 'cat', '/junk.txt')).stdout).toBe('junk\n');
  });

  it('.dockerignore excludes files, with ! exceptions', async () => {
    const ctx = await context({
      '.dockerignore': '*.md\n!README.md\nsecrets\n',
      'README.md': 'readme\n',
      'NOTES.md': 'notes\n',
      'secrets/key': 'secret\n',
      'app.txt': 'app\n',
      Dockerfile: `FROM ${base}\nCOPY . /ctx/\n`,
    });
    expect((await build(ctx, '-t', 'localhost/ignore:1')).code).toBe(0);
    expect((await run('localhost/ignore:1', 'ls', '-A', '/ctx')).stdout).toBe('.dockerignore\nDockerfile\nREADME.md\napp.txt\n');
    const named = await context({ '.dockerignore': 'secret.txt\n', 'secret.txt': 's\n', Dockerfile: `FROM ${base}\nCOPY secret.txt /\n` });
    const r = await build(named);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/line 2: COPY failed: secret.txt: not found in the build context \(excluded by .dockerignore\)/);
  });

  it('a rebuild is fully cached with the same digest; changing one file re-runs only the steps from the one reading it', async () => {
    const files = {
      'one.txt': 'one\n',
      'two.txt': 'two\n',
      Dockerfile: `FROM ${base}\nRUN echo first > /first\nCOPY one.txt /one.txt\nRUN cat /one.txt > /copy-of-one\nCOPY two.txt /two.txt\nCMD ["cat", "/copy-of-one"]\n`,
    };
    const ctx = await context(files);
    const first = await build(ctx, '-t', 'localhost/cache:1');
    expect(first.code).toBe(0);
    expect(steps(first.stdout).filter((s) => s.cached)).toEqual([]);
    const second = await build(ctx, '-t', 'localhost/cache:1');
    expect(steps(second.stdout).map((s) => s.cached)).toEqual([false, true, true, true, true, true]);
    expect(digestOf(second)).toBe(digestOf(first));

    await writeFile(join(ctx, 'one.txt'), 'changed\n');
    const third = await build(ctx, '-t', 'localhost/cache:1');
    expect(steps(third.stdout).map((s) => s.cached)).toEqual([false, true, false, false, false, false]);
    expect(digestOf(third)).not.toBe(digestOf(first));
    expect((await run('localhost/cache:1')).stdout).toBe('changed\n');

    const uncached = await build(ctx, '-t', 'localhost/cache:1', '--no-cache');
    expect(steps(uncached.stdout).filter((s) => s.cached)).toEqual([]);
  });

  it('SOURCE_DATE_EPOCH makes two uncached builds byte for byte the same', async () => {
    const ctx = await context({ 'a.txt': 'a\n', Dockerfile: `FROM ${base}\nWORKDIR /new/dir\nCOPY a.txt .\nRUN echo ran > /ran.txt\n` });
    const env = { SOURCE_DATE_EPOCH: '1700000000' };
    const a = await berth(['build', '--root', root, '--no-cache', '-t', 'localhost/repro:1', ctx], env);
    const b = await berth(['build', '--root', root, '--no-cache', '-t', 'localhost/repro:2', ctx], env);
    expect(a.code).toBe(0);
    expect(digestOf(a)).toMatch(/^sha256:/);
    expect(digestOf(b)).toBe(digestOf(a));
  });

  it('--push sends it to the registry: skopeo reads the config and history, umoci unpacks the same tree', async () => {
    const ctx = await context({
      'app/data.txt': 'data\n',
      Dockerfile: [
        `FROM ${base}`,
        'ENV APP_HOME=/app GREETING="hello world"',
        'LABEL org.example.team=builders',
        'EXPOSE 8080 53/udp',
        'COPY app/ $APP_HOME/',
        'RUN rm /etc/motd',
        'ENTRYPOINT ["/bin/sh", "-c"]',
        'CMD ["cat $APP_HOME/data.txt"]',
        'HEALTHCHECK --interval=5s --retries=2 CMD cat /app/data.txt',
        'STOPSIGNAL SIGINT',
        'VOLUME /var/data',
        'USER 0:0',
        'MAINTAINER builders@example.com',
      ].join('\n'),
    });
    const ref = `${registry}/team/app:1.0`;
    const r = await build(ctx, '-t', ref, '--label', 'version=1.0', '--push');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const config = JSON.parse(await skopeo('inspect', '--tls-verify=false', '--config', `docker://${ref}`));
    expect(config.config).toMatchObject({
      Entrypoint: ['/bin/sh', '-c'],
      Cmd: ['cat $APP_HOME/data.txt'],
      ExposedPorts: { '8080/tcp': {}, '53/udp': {} },
      Labels: { 'org.example.team': 'builders', version: '1.0' },
      StopSignal: 'SIGINT',
      Volumes: { '/var/data': {} },
      User: '0:0',
    });
    expect(config.author).toBe('builders@example.com');
    expect(Date.parse(config.created)).toBeGreaterThan(Date.now() - 600_000);
    expect(config.config.Env).toEqual(expect.arrayContaining(['APP_HOME=/app', 'GREETING=hello world']));
    const history = config.history.map((h: { created_by: string; empty_layer?: boolean }) => [h.created_by, !!h.empty_layer]);
    expect(history.slice(-12, -5)).toEqual([
      ['/bin/sh -c #(nop) ENV APP_HOME=/app GREETING="hello world"', true],
      ['/bin/sh -c #(nop) LABEL org.example.team=builders', true],
      ['/bin/sh -c #(nop) EXPOSE 8080 53/udp', true],
      [expect.stringMatching(/^\/bin\/sh -c #\(nop\) COPY multi:[0-9a-f]{64} in \/app /), false],
      ['/bin/sh -c rm /etc/motd', false],
      ['/bin/sh -c #(nop) ENTRYPOINT ["/bin/sh", "-c"]', true],
      ['/bin/sh -c #(nop) CMD ["cat $APP_HOME/data.txt"]', true],
    ]);
    expect(config.rootfs.diff_ids).toHaveLength(3 + 2); // busybox, /etc/motd and the applets' layers, then COPY and RUN

    const pulled = join(dir, 'pulled');
    await skopeo('copy', '--src-tls-verify=false', `docker://${ref}`, `oci:${pulled}:app`);
    // skopeo shows only the OCI fields; docker's Healthcheck is in the config as pushed
    const blob = async (digest: string) => JSON.parse(await readFile(join(pulled, 'blobs', 'sha256', digest.slice(7)), 'utf8'));
    const pulledManifest = await blob(JSON.parse(await readFile(join(pulled, 'index.json'), 'utf8')).manifests[0].digest);
    expect((await blob(pulledManifest.config.digest)).config.Healthcheck).toEqual({ Test: ['CMD-SHELL', 'cat /app/data.txt'], Interval: 5e9, Retries: 2 });
    const bundle = join(dir, 'bundle');
    await promisify(execFile)('umoci', ['unpack', '--image', `${pulled}:app`, bundle]);
    expect(await readFile(join(bundle, 'rootfs', 'app', 'data.txt'), 'utf8')).toBe('data\n');
    expect(existsSync(join(bundle, 'rootfs', 'etc', 'motd'))).toBe(false);
    expect(existsSync(join(bundle, 'rootfs', 'bin', 'busybox'))).toBe(true);
    expect((await run(ref)).stdout).toBe('data\n');
  });

  it('--output docker-archive:FILE writes an archive skopeo reads', async () => {
    const ctx = await context({ Dockerfile: `FROM ${base}\nCMD ["echo", "archived"]\n` });
    const file = join(dir, 'image.tar');
    expect((await build(ctx, '-t', 'localhost/archive:1', '--output', `docker-archive:${file}`)).code).toBe(0);
    const config = JSON.parse(await skopeo('inspect', '--config', `docker-archive:${file}`));
    expect(config.config.Cmd).toEqual(['echo', 'archived']);
  });

  it("COPY follows docker's destination rules: a new name, an existing directory, a directory's contents, globs", async () => {
    const ctx = await context({
      'a.txt': 'a\n',
      'b.txt': 'b\n',
      'dir/inner/deep.txt': 'deep\n',
      Dockerfile: [
        `FROM ${base}`,
        "RUN echo 'app:x:1234:1234::/home/app:/bin/sh' >> /etc/passwd && echo 'grp:x:4321:' >> /etc/group",
        'COPY a.txt /newname',
        'COPY a.txt /etc',
        'COPY dir /d2',
        'COPY *.txt /multi/',
        'COPY --chown=app a.txt /owned-by-app',
        'COPY --chown=app:grp a.txt /owned-by-app-grp',
      ].join('\n'),
    });
    expect((await build(ctx, '-t', 'localhost/dest:1')).code).toBe(0);
    const r = await run('localhost/dest:1', 'sh', '-c', 'cat /newname /etc/a.txt /d2/inner/deep.txt; ls /d2 /multi; stat -c %u:%g /owned-by-app /owned-by-app-grp');
    expect(r.stdout).toBe('a\na\ndeep\n/d2:\ninner\n\n/multi:\na.txt\nb.txt\n1234:1234\n1234:4321\n');
    await writeFile(join(ctx, 'Dockerfile'), `FROM ${base}\nCOPY a.txt b.txt /nodir\n`);
    const several = await build(ctx);
    expect(several.stderr).toContain('line 2: COPY failed: When using COPY with more than one source file, the destination must be a directory and end with a /');
  });

  it('COPY --chown and --chmod; ARG with --build-arg in RUN; no network unless --network host', async () => {
    const ctx = await context({
      'f.txt': 'f\n',
      Dockerfile: [`FROM ${base}`, 'ARG MSG=default', 'COPY --chown=12:34 --chmod=600 f.txt /f.txt', 'USER 12', 'RUN id -u; stat -c "%u:%g %a" /f.txt; echo "msg=$MSG"; ls /sys/class/net'].join('\n'),
    });
    const interfaces = (out: string) => out.split('msg=given\n')[1]!.split('COMMIT')[0]!.trim().split('\n');
    const r = await build(ctx, '--build-arg', 'MSG=given');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('12\n12:34 600\nmsg=given\n');
    expect(interfaces(r.stdout)).toEqual(['lo']);
    const host = await build(ctx, '--build-arg', 'MSG=given', '--network', 'host');
    expect(host.code).toBe(0);
    expect(interfaces(host.stdout).length).toBeGreaterThan(1);
  });

  it('ONBUILD triggers are recorded, then run by the build that uses the image', async () => {
    const parent = await context({ Dockerfile: `FROM ${base}\nONBUILD RUN echo triggered > /onbuild.txt\n` });
    expect((await build(parent, '-t', 'localhost/onbuild:parent')).code).toBe(0);
    const child = await build(await context({ Dockerfile: 'FROM localhost/onbuild:parent\nCMD ["cat", "/onbuild.txt"]\n' }), '-t', 'localhost/onbuild:child');
    expect(child.stdout).toContain('ONBUILD RUN echo triggered > /onbuild.txt');
    expect((await run('localhost/onbuild:child')).stdout).toBe('triggered\n');
  });

  it('--platform sets the image platform; RUN refuses a foreign one', async () => {
    const host = formatPlatform(hostPlatform());
    const foreign = host === 'linux/arm64' ? 'linux/amd64' : 'linux/arm64';
    const ctx = await context({ f: 'f\n', Dockerfile: 'FROM scratch\nCOPY f /f\n' });
    const archive = join(dir, 'foreign.tar');
    expect((await build(ctx, '--platform', foreign, '--output', `docker-archive:${archive}`)).code).toBe(0);
    const config = JSON.parse(await skopeo('inspect', '--config', `docker-archive:${archive}`));
    expect(`${config.os}/${config.architecture}`).toBe(foreign);
    await writeFile(join(ctx, 'Dockerfile'), 'FROM scratch\nCOPY f /f\nRUN ["/f"]\n');
    const r = await build(ctx, '--platform', foreign);
    expect(r.stderr).toContain(`Dockerfile line 3: RUN cannot run ${foreign} programs on this ${host} host`);
  });

  it('RUN needs overlayfs: with BERTH_ROOTFS=copy it says so', async () => {
    const r = await berth(['build', '--root', root, await context({ Dockerfile: `FROM ${base}\nRUN true\n` })], { BERTH_ROOTFS: 'copy' });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/runs on a copied root filesystem \(BERTH_ROOTFS=copy\); its changes can only be kept on overlayfs/);
  });

  it('a failing step prints its exit code and the build exits non-zero', async () => {
    const ctx = await context({ Dockerfile: `FROM ${base}\nRUN echo before; exit 3\nRUN echo never\n` });
    const r = await build(ctx, '-t', 'localhost/fail:1');
    expect(r.code).not.toBe(0);
    expect(r.stdout).toContain('STEP 2/3: RUN echo before; exit 3\nbefore\n');
    expect(r.stdout).not.toContain('STEP 3/3');
    expect(r.stderr).toContain('Dockerfile line 2: RUN echo before; exit 3: the command returned a non-zero code: 3');
  });

  it('ADD of an unreachable URL, paths outside the context and unsupported syntax fail clearly', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise((resolve) => closed.close(resolve));
    const url = await build(await context({ Dockerfile: `FROM ${base}\nADD http://127.0.0.1:${port}/file.txt /\n` }));
    expect(url.code).not.toBe(0);
    expect(url.stderr).toContain(`line 2: ADD failed: cannot fetch http://127.0.0.1:${port}/file.txt: connect ECONNREFUSED`);

    // A URL that answers is downloaded (mode 0600, named after the URL's path under a directory).
    const web = createHttpServer((req, res) => res.end(req.url === '/files/page.txt' ? 'downloaded\n' : ''));
    await new Promise<void>((resolve) => web.listen(0, '127.0.0.1', resolve));
    try {
      const served = `http://127.0.0.1:${(web.address() as AddressInfo).port}/files/page.txt`;
      expect((await build(await context({ Dockerfile: `FROM ${base}\nADD ${served} /downloads/\n` }), '-t', 'localhost/url:1')).code).toBe(0);
      expect((await run('localhost/url:1', 'sh', '-c', 'cat /downloads/page.txt; stat -c %a /downloads/page.txt')).stdout).toBe('downloaded\n600\n');
    } finally {
      await new Promise((resolve) => web.close(resolve));
    }

    const outside = await build(await context({ Dockerfile: `FROM ${base}\nCOPY ../../etc/passwd /\n` }));
    expect(outside.stderr).toMatch(/line 2: COPY failed: forbidden path outside the build context: \.\.\/\.\.\/etc\/passwd/);

    // A symbolic link is followed inside the context only: /etc/hostname means <context>/etc/hostname.
    const linked = await context({ Dockerfile: `FROM ${base}\nCOPY link /stolen\n` });
    await symlink('/etc/hostname', join(linked, 'link'));
    const escaped = await build(linked);
    expect(escaped.code).not.toBe(0);
    expect(escaped.stderr).toMatch(/COPY failed: link: not found in the build context/);

    // Inside a copied directory a link is copied as a link, never followed on the host.
    const tree = await context({ 'd/file': 'f\n', Dockerfile: `FROM ${base}\nCOPY d /d\n` });
    await symlink('/etc/hostname', join(tree, 'd', 'host-file'));
    expect((await build(tree, '-t', 'localhost/links:1')).code).toBe(0);
    const links = await run('localhost/links:1', 'sh', '-c', 'ls /d; readlink /d/host-file; test "$(cat /d/host-file)" = "$(cat /etc/hostname)" && echo the-containers-own');
    expect(links.stdout).toBe('file\nhost-file\n/etc/hostname\nthe-containers-own\n');

    const mount = await build(await context({ Dockerfile: `FROM ${base}\n\nRUN --mount=type=cache,target=/c true\n` }));
    expect(mount.stderr).toMatch(/line 3: RUN --mount is a BuildKit feature berth build does not support/);
  });

  it('berth commit makes an image of a container that wrote a file', async () => {
    const made = await berth(['run', '--root', root, '-q', '--name', 'to-commit', base, 'sh', '-c', 'echo committed > /written.txt']);
    expect(made.code).toBe(0);
    const c = await berth(['commit', '--root', root, 'to-commit', 'localhost/committed:1', '--change', 'CMD ["cat", "/written.txt"]', '-m', 'wrote a file']);
    expect(c.stderr).toContain('Committed localhost/committed:1');
    expect(c.code).toBe(0);
    expect((await run('localhost/committed:1')).stdout).toBe('committed\n');
    const archive = join(dir, 'committed.tar');
    const out = await build(await context({ Dockerfile: 'FROM localhost/committed:1\n' }), '--output', `docker-archive:${archive}`);
    expect(out.code).toBe(0);
    const config = JSON.parse(await skopeo('inspect', '--config', `docker-archive:${archive}`));
    expect(config.history[config.history.length - 1]).toMatchObject({ created_by: "sh -c echo committed > /written.txt", comment: 'wrote a file' });
  });
});
