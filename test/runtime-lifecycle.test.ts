// Containers as docker users run them (issue #14, "Containers"), end to end through the
// built `berth` command as root: run -d and logs, stop and kill, exec, rm and container
// prune, ps filters and formats, images -q and rmi, docker's exit codes, Ctrl-C twice
// on a PID 1 that ignores signals, the host check before a pull, and the hint that
// sends registry deletes to `berth delete`.

import { spawn } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { push } from '../src/client/index.js';
import { startServer, type RunningServer } from '../src/server/serve.js';
import { tempDir } from './helpers/images.js';
import { BERTH, berth, buildRuntimeImage, json, runtimeAvailable } from './helpers/runtime.js';

interface PsEntry {
  id: string;
  name: string;
  status: string;
  exitCode?: number;
}

describe.skipIf(!runtimeAvailable())('containers as docker users run them', () => {
  let dir: string;
  let layout: string;
  let root: string;
  let image: string;

  /** `berth CMD --root ROOT ARGS...` */
  const b = (cmd: string, ...args: string[]) => berth([cmd, '--root', root, ...args]);
  const exitCode = async (name: string) => Number((await b('inspect', '--format', '{{.State.ExitCode}}', name)).stdout);
  const detached = async (...args: string[]) => {
    const r = await b('run', '-d', '-q', '--net', 'none', ...args);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^[0-9a-f]{64}\n$/);
    return r.stdout.trim();
  };

  beforeAll(async () => {
    dir = await tempDir('berth-lifecycle-');
    layout = join(dir, 'layout');
    root = join(dir, 'root');
    await buildRuntimeImage(layout);
    image = `oci:${layout}:latest`;
  });

  afterAll(async () => {
    if (root) await b('rm', '-f', ...json<PsEntry[]>(await b('ps', '-a', '--json')).map((c) => c.id));
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('run -d prints the id and keeps the output for logs; logs -f follows until the container ends', async () => {
    const id = await detached('--name', 'talker', image, 'sh', '-c', 'echo one; echo err >&2; sleep 1; echo two');
    const follow = await b('logs', '-f', 'talker');
    expect(follow.stdout).toBe('one\nerr\ntwo\n');
    expect((await b('logs', id.slice(0, 12))).stdout).toBe('one\nerr\ntwo\n');
    expect(await exitCode('talker')).toBe(0);
    const attached = await b('run', '-q', '--net', 'none', '--name', 'attached', image, 'true');
    expect((await b('logs', 'attached')).stderr).toContain('ran attached');
    expect(attached.code).toBe(0);
    await b('rm', 'talker', 'attached');
  });

  it('stop sends SIGTERM, then SIGKILL after -t, also to a PID 1 that ignores SIGTERM', async () => {
    await detached('--name', 'polite', image, 'sh', '-c', 'trap "exit 5" TERM; while :; do sleep 0.1; done');
    expect((await b('stop', 'polite')).stdout).toBe('polite\n');
    expect(await exitCode('polite')).toBe(5);

    await detached('--name', 'stubborn', image, 'sh', '-c', 'trap "" TERM; while :; do sleep 0.1; done');
    const started = Date.now();
    expect((await b('stop', '-t', '1', 'stubborn')).code).toBe(0);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    expect(await exitCode('stubborn')).toBe(137);
    // Stopping a stopped container is not an error, as in docker.
    expect((await b('stop', 'stubborn')).code).toBe(0);
    await b('rm', 'polite', 'stubborn');
  });

  it('kill -s sends the signal given; kill alone sends SIGKILL', async () => {
    await detached('--name', 'target', image, 'sh', '-c', 'trap "echo got USR1" USR1; echo ready; while :; do sleep 0.1; done');
    expect((await b('kill', '-s', 'USR1', 'target')).code).toBe(0);
    const deadline = Date.now() + 5000;
    while (!(await b('logs', 'target')).stdout.includes('got USR1') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect((await b('logs', 'target')).stdout).toBe('ready\ngot USR1\n');
    expect((await b('kill', 'target')).stdout).toBe('target\n');
    expect(await exitCode('target')).toBe(137);
    const again = await b('kill', 'target');
    expect(again.code).toBe(125);
    expect(again.stderr).toContain('is not running');
    await b('rm', 'target');
  });

  it('exec joins the namespaces and cgroup of a running container, with docker exit codes', async () => {
    const id = await detached('--name', 'box', '--hostname', 'inside', '-e', 'FROM_RUN=1', image, 'sleep', '1000');
    const r = await b('exec', 'box', 'sh', '-c', 'hostname; echo $FROM_RUN; ls /proc | grep -c "^[0-9]"; cat /proc/self/cgroup');
    const [hostname, env, processes, ...cgroups] = r.stdout.trim().split('\n');
    expect(hostname).toBe('inside');
    expect(env).toBe('1');
    // Its own PID namespace: sleep (1), sh, grep, ls, and nothing of the host.
    expect(Number(processes)).toBeLessThan(10);
    expect(cgroups.some((line) => line.endsWith(`/berth/${id}`))).toBe(true);
    expect((await b('exec', '-e', 'X=y', '-u', '1000:1000', '-w', '/bin', 'box', 'sh', '-c', 'echo $X $(id -u) $PWD')).stdout).toBe('y 1000 /bin\n');
    expect((await b('exec', 'box', 'sh', '-c', 'exit 3')).code).toBe(3);
    expect((await b('exec', '-it', 'box', 'sh', '-c', 'test -t 0 && test -t 1 && echo terminal')).stdout).toContain('terminal');
    expect((await b('exec', 'box', 'no-such-command')).code).toBe(127);
    expect((await b('exec', 'box', '/etc/hostname')).code).toBe(126);
    await b('kill', 'box');
    const stopped = await b('exec', 'box', 'true');
    expect(stopped.code).toBe(125);
    expect(stopped.stderr).toContain('is not running');
    await b('rm', 'box');
  });

  it('rm refuses a running container without -f; rm -f and container prune remove containers', async () => {
    await detached('--name', 'runner', image, 'sleep', '1000');
    await b('run', '-q', '--net', 'none', '--name', 'done1', image, 'true');
    await b('run', '-q', '--net', 'none', '--name', 'done2', image, 'true');
    const refused = await b('rm', 'runner', 'done1');
    expect(refused.code).toBe(125);
    expect(refused.stderr).toContain('container runner is running: stop it first, or use rm -f');
    // The other one named was removed all the same, as docker does.
    expect(refused.stdout).toBe('done1\n');
    const pruned = await berth(['container', 'prune', '--root', root, '--json']);
    const names = json<PsEntry[]>(await b('ps', '-a', '--json')).map((c) => c.name);
    expect(names).toContain('runner');
    expect(names).not.toContain('done2');
    expect(json<{ containers: string[] }>(pruned).containers.length).toBeGreaterThan(0);
    expect((await b('rm', '-f', 'runner')).stdout).toBe('runner\n');
    expect(json<PsEntry[]>(await b('ps', '-a', '--json'))).toEqual([]);
  });

  it('ps -q, -f status=exited and --format', async () => {
    const up = await detached('--name', 'up', image, 'sleep', '1000');
    await b('run', '-q', '--net', 'none', '--name', 'down', image, 'sh', '-c', 'exit 4');
    expect((await b('ps', '-q')).stdout).toBe(`${up.slice(0, 12)}\n`);
    expect((await b('ps', '-a', '--format', '{{.Names}} {{.Status}}')).stdout).toBe('down Exited (4)\nup Up\n');
    expect((await b('ps', '-f', 'status=exited', '--format', '{{.Names}}')).stdout).toBe('down\n');
    expect((await b('ps', '-a', '-q', '-f', 'name=up')).stdout).toBe(`${up.slice(0, 12)}\n`);
    expect((await b('ps', '--format', 'table {{.ID}}\\t{{.Names}}')).stdout).toBe(`CONTAINER ID\tNAMES\n${up.slice(0, 12)}\tup\n`);
    const bad = await b('ps', '-f', 'colour=red');
    expect(bad.code).toBe(125);
    expect(bad.stderr).toContain('invalid filter colour');
    await b('rm', '-f', 'up', 'down');
  });

  it("exits 125 when berth fails, 126 when the command cannot run, 127 when it is missing, else the container's status", async () => {
    const run = (...args: string[]) => b('run', '--rm', '-q', '--net', 'none', ...args);
    expect((await run('--memory', 'lots', image, 'true')).code).toBe(125);
    expect((await run('--no-such-flag', image, 'true')).code).toBe(125);
    expect((await run(`oci:${layout}:no-such-tag`, 'true')).code).toBe(125);
    expect((await run(image, '/etc/hostname')).code).toBe(126);
    expect((await run(image, 'no-such-command')).code).toBe(127);
    expect((await run(image, 'sh', '-c', 'exit 3')).code).toBe(3);
  });

  it('Ctrl-C twice on berth run stops a PID 1 that ignores SIGINT and SIGTERM', async () => {
    const child = spawn(process.execPath, [BERTH, 'run', '--root', root, '--rm', '-q', '--net', 'none', image, 'sh', '-c', 'trap "" INT TERM; echo ready; while :; do sleep 0.1; done']);
    let out = '';
    await new Promise<void>((resolve) => child.stdout.on('data', (c: Buffer) => ((out += c.toString()), out.includes('ready') && resolve())));
    const closed = new Promise<number | null>((resolve) => child.on('close', resolve));
    child.kill('SIGINT');
    // The first one is passed on and ignored: the container still runs.
    const first = await Promise.race([closed, new Promise((r) => setTimeout(() => r('running'), 500))]);
    expect(first).toBe('running');
    child.kill('SIGINT');
    expect(await closed).toBe(137);
  });

  it('checks it can run containers before it pulls anything', async () => {
    // As an unprivileged user, against a registry that does not exist: the check answers first.
    const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = spawn('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, BERTH, 'run', '--root', join(dir, 'nobody'), '127.0.0.1:1/no/such:image', 'true']);
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('close', (code) => resolve({ code, stderr }));
    });
    expect(r.stderr).toContain('cannot run containers here: containers need root');
    expect(r.stderr).not.toContain('Pulling');
    expect(r.code).toBe(125);
  });

  it('answers rm of a registry reference with a hint to use berth delete', async () => {
    const r = await b('rm', '127.0.0.1:5000/team/app:1.0');
    expect(r.code).toBe(125);
    expect(r.stderr).toBe('berth: no such container: 127.0.0.1:5000/team/app:1.0 (to delete it on a registry: berth delete 127.0.0.1:5000/team/app:1.0)\n');
  });

  describe('images of the store', () => {
    let server: RunningServer;
    let ref: string;

    beforeAll(async () => {
      server = await startServer({ listen: '127.0.0.1:0', data: join(dir, 'registry'), logger: pino({ level: 'silent' }) });
      ref = `127.0.0.1:${server.port}/test/busybox:1.0`;
      await push(layout, ref, { sourceTag: 'latest' });
    });
    afterAll(async () => {
      await server?.close();
    });

    it('pull without a destination fills the store; images -q lists ids; rmi refuses an image a container uses unless -f', async () => {
      expect((await b('pull', ref)).code).toBe(0);
      expect(json<{ name: string }[]>(await b('images', '--json')).map((i) => i.name)).toEqual([ref]);
      const user = await b('run', '--net', 'none', '--name', 'user', ref, 'true');
      expect(user.stderr).not.toContain('Pulling');
      expect(user.code).toBe(0);
      const ids = (await b('images', '-q')).stdout;
      expect(ids).toMatch(/^[0-9a-f]{12}\n$/);
      const refused = await b('rmi', ref);
      expect(refused.code).toBe(125);
      expect(refused.stderr).toContain(`image ${ref} is used by container user`);
      expect((await b('rmi', '-f', ref)).code).toBe(0);
      expect((await b('images', '-q')).stdout).toBe('');
      await b('rm', 'user');
    });

    it('runs a docker archive through the client transports, loading it into the store', async () => {
      const archive = join(dir, 'app.tar');
      expect((await berth(['pull', ref, archive])).code).toBe(0);
      const r = await b('run', '--rm', '--net', 'none', `docker-archive:${archive}`, 'sh', '-c', 'echo from the archive');
      expect(r.stdout).toBe('from the archive\n');
      expect(r.stderr).toContain(`Loading docker-archive:${archive}`);
      expect((await b('run', '--rm', '--net', 'none', `docker-archive:${archive}`, 'true')).stderr).not.toContain('Loading');
    });
  });
});
