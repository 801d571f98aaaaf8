// Containers on the network (issue #20), end to end through the built `berth` command as
// root: a busybox web server published with -p and -P and reached with curl on
// 127.0.0.1, UDP through a published port, outbound access to a network namespace this
// test makes (a veth pair, never the internet), /etc/hosts and resolv.conf, inspect in
// docker's shape, stats and top, the CPU and memory flags in the cgroup files, and
// nothing left on the host (namespace, slirp4netns, cgroup) after stop, rm -f and
// kill -9 of `berth run` followed by `berth container prune`.

import { execFile, spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { readFile, readdir, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../bench/servers.js';
import { tempDir } from './helpers/images.js';
import { BERTH, berth, buildRuntimeImage, json, runtimeAvailable } from './helpers/runtime.js';
import { stackLayers, tarLayer } from './helpers/runtime-images.js';

const exec = promisify(execFile);

interface Inspect {
  Id: string;
  State: { Status: string; Running: boolean; Pid: number; ExitCode: number };
  HostConfig: { Memory: number; MemorySwap: number; CpuShares: number; CpusetCpus: string; NetworkMode: string; PortBindings: Record<string, { HostIp: string; HostPort: string }[]> };
  Config: { ExposedPorts: Record<string, object>; Cmd: string[] };
  NetworkSettings: { Ports: Record<string, { HostIp: string; HostPort: string }[] | null> };
  cgroups?: never;
}

async function curl(url: string): Promise<string> {
  const { stdout } = await exec('curl', ['-sS', '--max-time', '5', url]);
  return stdout;
}

/** What the runtime adds to the host for a container: its namespace, slirp4netns, cgroup directories. */
async function leftovers(id: string): Promise<string[]> {
  const found: string[] = [];
  const short = id.slice(0, 16);
  if ((await readdir('/run/netns').catch(() => [] as string[])).includes(`berth-${short}`)) found.push(`netns berth-${short}`);
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const cmdline = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0');
    const state = (await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '')).split(') ')[1]?.[0];
    if (state !== 'Z' && cmdline.some((a) => a.includes(short))) found.push(`process ${pid}: ${cmdline.join(' ')}`);
  }
  for (const hierarchy of await readdir('/sys/fs/cgroup').catch(() => [] as string[])) {
    if ((await readdir(join('/sys/fs/cgroup', hierarchy, 'berth')).catch(() => [] as string[])).includes(id)) found.push(`cgroup ${hierarchy}`);
  }
  return found;
}

/** Waits until `check` holds (the kernel reaps a killed process a moment later). */
async function eventually(check: () => Promise<boolean>, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Waits for httpd in a container to listen: until then slirp resets connections (cleanly). */
async function serving(port: number): Promise<void> {
  await eventually(async () => curl(`http://127.0.0.1:${port}/index.html`).then((t) => t === 'Hello World\n', () => false), 15_000);
}

describe.skipIf(!runtimeAvailable())('containers on the network', () => {
  let dir: string;
  let layout: string;
  let root: string;
  const ids: string[] = [];

  const b = (...args: string[]) => berth([...args.slice(0, 1), '--root', root, ...args.slice(1)]);
  /** `berth run -d`, returning the id it printed. */
  const runDetached = async (...args: string[]) => {
    const r = await b('run', '-d', '-q', ...args);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^[0-9a-f]{64}\n$/);
    ids.push(r.stdout.trim());
    return r.stdout.trim();
  };
  const inspect = async (name: string) => json<Inspect[]>(await b('inspect', name))[0]!;

  beforeAll(async () => {
    dir = await tempDir('berth-network-');
    layout = join(dir, 'layout');
    root = join(dir, 'root');
    await buildRuntimeImage(layout);
    const www = await tarLayer([{ name: 'www/', type: 'directory' }, { name: 'www/index.html', content: 'Hello World\n' }]);
    await stackLayers(layout, 'latest', 'web', [www], { Cmd: ['httpd', '-f', '-p', '8082', '-h', '/www'], ExposedPorts: { '8082/tcp': {} } });
  });

  afterEach(async () => {
    if (ids.length > 0) await b('rm', '-f', ...ids.splice(0));
  });

  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('publishes a web server with -p 127.0.0.1:PORT:8082, lists it with berth port, and releases everything at stop', async () => {
    const port = await freePort();
    const id = await runDetached('--name', 'web', '-p', `127.0.0.1:${port}:8082`, `oci:${layout}:web`);
    await serving(port);
    expect(await curl(`http://127.0.0.1:${port}/index.html`)).toBe('Hello World\n');
    // Many connections at once.
    const bodies = await Promise.all(Array.from({ length: 20 }, () => fetch(`http://127.0.0.1:${port}/index.html`).then((r) => r.text())));
    expect(new Set(bodies)).toEqual(new Set(['Hello World\n']));
    expect((await b('port', 'web')).stdout).toBe(`8082/tcp -> 127.0.0.1:${port}\n`);
    expect((await b('port', 'web', '8082')).stdout).toBe(`127.0.0.1:${port}\n`);
    expect((await b('ps')).stdout).toContain(`127.0.0.1:${port}->8082/tcp`);
    expect(await leftovers(id)).not.toEqual([]);

    // httpd as PID 1 has no SIGTERM handler: stop kills it after -t.
    const stop = await b('stop', '-t', '1', 'web');
    expect(stop.stdout).toBe('web\n');
    expect((await inspect('web')).State).toMatchObject({ Status: 'exited', Running: false, ExitCode: 137 });
    await eventually(async () => (await leftovers(id)).length === 0);
    await expect(curl(`http://127.0.0.1:${port}/index.html`)).rejects.toThrow();
  });

  it('refuses connections cleanly, never hanging, until the server in the container listens', async () => {
    const port = await freePort();
    await runDetached('--name', 'late', '-p', `127.0.0.1:${port}:8082`, `oci:${layout}:web`, 'sh', '-c', 'sleep 2; exec httpd -f -p 8082 -h /www');
    const started = Date.now();
    await expect(curl(`http://127.0.0.1:${port}/index.html`)).rejects.toThrow(/reset|Empty reply|closed/i);
    expect(Date.now() - started).toBeLessThan(4000);
    await serving(port);
  });

  it('fails the run when the host port is in use, before the container starts', async () => {
    const busy: Server = createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    const port = (busy.address() as { port: number }).port;
    try {
      const r = await b('run', '-q', '--rm', '-p', `127.0.0.1:${port}:8082`, `oci:${layout}:latest`, 'sh', '-c', 'echo started');
      expect(r.code).toBe(125);
      expect(r.stdout).toBe('');
      expect(r.stderr).toContain(`cannot publish 127.0.0.1:${port}/tcp: the port is already in use on the host`);
    } finally {
      busy.close();
    }
    expect(json<unknown[]>(await b('ps', '-a', '--json'))).toEqual([]);
  });

  it('publishes EXPOSEd ports with -P and -p PORT on free host ports; two containers publish different host ports to the same container port', async () => {
    await runDetached('--name', 'one', '-P', `oci:${layout}:web`);
    await runDetached('--name', 'two', '-p', '8082', `oci:${layout}:web`);
    const ports = await Promise.all(['one', 'two'].map(async (n) => {
      const line = (await b('port', n)).stdout;
      const m = /^8082\/tcp -> 0\.0\.0\.0:(\d+)\n$/.exec(line);
      expect(m, line).not.toBeNull();
      return Number(m![1]);
    }));
    expect(ports[0]).not.toBe(ports[1]);
    for (const p of ports) await serving(p);
    for (const p of ports) expect(await curl(`http://127.0.0.1:${p}/index.html`)).toBe('Hello World\n');
    expect((await inspect('one')).Config.ExposedPorts).toEqual({ '8082/tcp': {} });
  });

  it('forwards UDP through a published port, and rm -f leaves nothing behind', async () => {
    const port = await freePort();
    const id = await runDetached('--name', 'udp', '-p', `127.0.0.1:${port}:5353/udp`, `oci:${layout}:latest`, 'sleep', '1000');
    // The busybox here has no `nc -u`: a UDP echo server runs in the container's network namespace instead.
    const pid = (await b('inspect', '--format', '{{.State.Pid}}', 'udp')).stdout.trim();
    const echo = spawn('nsenter', [`--net=/proc/${pid}/ns/net`, process.execPath, '-e',
      "const s=require('dgram').createSocket('udp4');s.on('message',(m,r)=>s.send(Buffer.concat([Buffer.from('echo '),m]),r.port,r.address));s.bind(5353,()=>console.log('ready'))"]);
    try {
      await new Promise((resolve) => echo.stdout.once('data', resolve));
      const client = createSocket('udp4');
      const answer = new Promise<string>((resolve) => client.once('message', (m) => resolve(m.toString())));
      // A datagram can be lost; send until one is answered.
      const timer = setInterval(() => client.send('ping', port, '127.0.0.1'), 200);
      client.send('ping', port, '127.0.0.1');
      try {
        expect(await answer).toBe('echo ping');
      } finally {
        clearInterval(timer);
        client.close();
      }
    } finally {
      echo.kill('SIGKILL');
    }
    expect((await b('rm', '-f', 'udp')).code).toBe(0);
    ids.splice(ids.indexOf(id), 1);
    await eventually(async () => (await leftovers(id)).length === 0);
    expect(json<unknown[]>(await b('ps', '-a', '--json', '-f', 'name=udp'))).toEqual([]);
  });

  describe('outbound', () => {
    // A namespace of the test's own, joined to the host by a veth pair, with a web server in it.
    const peer = `berthtest-${process.pid}`;
    let server: ReturnType<typeof spawn> | undefined;

    beforeAll(async () => {
      await exec('ip', ['netns', 'add', peer]);
      await exec('ip', ['link', 'add', `bt${process.pid}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', peer]);
      await exec('ip', ['addr', 'add', '10.213.77.1/30', 'dev', `bt${process.pid}`]);
      await exec('ip', ['link', 'set', `bt${process.pid}`, 'up']);
      await exec('ip', ['-n', peer, 'addr', 'add', '10.213.77.2/30', 'dev', 'eth0']);
      await exec('ip', ['-n', peer, 'link', 'set', 'eth0', 'up']);
      await exec('ip', ['-n', peer, 'link', 'set', 'lo', 'up']);
      const www = join(dir, 'peer-www');
      await exec('mkdir', ['-p', www]);
      await exec('sh', ['-c', `echo from the peer > ${www}/index.html`]);
      server = spawn('ip', ['netns', 'exec', peer, 'busybox', 'httpd', '-f', '-p', '10.213.77.2:8080', '-h', www]);
      await eventually(async () => curl('http://10.213.77.2:8080/index.html').then((t) => t === 'from the peer\n', () => false));
    });

    afterAll(async () => {
      if (server && server.exitCode === null) {
        const gone = new Promise((resolve) => server!.once('exit', resolve));
        server.kill('SIGKILL');
        await gone;
      }
      await exec('ip', ['link', 'delete', `bt${process.pid}`]).catch(() => undefined);
      await exec('ip', ['netns', 'delete', peer]).catch(() => undefined);
    });

    it('reaches a server outside the container by default, with /etc/hosts, resolv.conf, --dns and --add-host', async () => {
      // busybox's wget crashes here (static glibc); nc speaks the HTTP instead.
      const get = 'printf "GET /index.html HTTP/1.0\\r\\n\\r\\n" | nc -w 3 10.213.77.2 8080 | tail -n 1';
      const r = await b('run', '--rm', '-q', '--hostname', 'box', `oci:${layout}:latest`, 'sh', '-c', `${get}; cat /etc/hosts /etc/resolv.conf`);
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe('from the peer\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n10.0.2.100\tbox\nnameserver 10.0.2.3\n');
      const custom = await b('run', '--rm', '-q', '--dns', '10.213.77.2', '--add-host', 'db:10.1.2.3', `oci:${layout}:latest`, 'sh', '-c', 'cat /etc/resolv.conf; tail -n 1 /etc/hosts');
      expect(custom.stdout).toBe('nameserver 10.213.77.2\n10.1.2.3\tdb\n');
      const none = await b('run', '--rm', '-q', '--net', 'none', `oci:${layout}:latest`, 'sh', '-c', get);
      expect(none.stdout).toBe('');
    });
  });

  it('shows --memory, --cpu-shares, --cpuset-cpus, --memory-swap and -p in inspect, the cgroup and stats; top lists its processes', async () => {
    const port = await freePort();
    const id = await runDetached('--name', 'limited', '--memory', '64m', '--memory-swap', '96m', '--cpu-shares', '512', '--cpuset-cpus', '0', '-p', `127.0.0.1:${port}:8082`, `oci:${layout}:web`);
    const view = await inspect('limited');
    expect(view.Id).toBe(id);
    expect(view.HostConfig).toMatchObject({ Memory: 64 * 1024 * 1024, MemorySwap: 96 * 1024 * 1024, CpuShares: 512, CpusetCpus: '0', NetworkMode: 'slirp4netns' });
    expect(view.HostConfig.PortBindings).toEqual({ '8082/tcp': [{ HostIp: '127.0.0.1', HostPort: String(port) }] });
    expect(view.NetworkSettings.Ports).toEqual({ '8082/tcp': [{ HostIp: '127.0.0.1', HostPort: String(port) }] });
    expect(view.State).toMatchObject({ Status: 'running', Running: true });
    expect((await b('inspect', '--format', '{{.State.Pid}} {{.HostConfig.CpuShares}} {{json .Config.Cmd}}', 'limited')).stdout).toBe(
      `${view.State.Pid} 512 ["httpd","-f","-p","8082","-h","/www"]\n`,
    );

    // The values reached the kernel: cgroup v1 files here, their v2 equivalents elsewhere.
    const v1 = await readFile(`/sys/fs/cgroup/cpu/berth/${id}/cpu.shares`, 'utf8').catch(() => undefined);
    if (v1 !== undefined) {
      expect(v1.trim()).toBe('512');
      expect((await readFile(`/sys/fs/cgroup/memory/berth/${id}/memory.limit_in_bytes`, 'utf8')).trim()).toBe(String(64 * 1024 * 1024));
      expect((await readFile(`/sys/fs/cgroup/cpuset/berth/${id}/cpuset.cpus`, 'utf8')).trim()).toBe('0');
    } else {
      const v2 = `/sys/fs/cgroup/berth/${id}`;
      expect((await readFile(`${v2}/cpu.weight`, 'utf8')).trim()).toBe('20');
      expect((await readFile(`${v2}/memory.max`, 'utf8')).trim()).toBe(String(64 * 1024 * 1024));
    }

    const stats = await b('stats', '--no-stream');
    expect(stats.stdout).toMatch(/CONTAINER ID\s+NAME\s+CPU %\s+MEM USAGE \/ LIMIT\s+MEM %\s+PIDS/);
    expect(stats.stdout).toMatch(new RegExp(`${id.slice(0, 12)}\\s+limited\\s+\\d+\\.\\d\\d%\\s+\\S+ \\S+ / 64\\.0 MiB\\s+\\S+%\\s+1\\n`));
    const statsJson = json<{ name: string; usage: { memoryLimit: number; pids: number } }[]>(await b('stats', '--json'));
    expect(statsJson.map((s) => [s.name, s.usage.memoryLimit, s.usage.pids])).toEqual([['limited', 64 * 1024 * 1024, 1]]);

    const top = await b('top', 'limited');
    expect(top.stdout.split('\n')[0]).toMatch(/^UID\s+PID\s+PPID/);
    expect(top.stdout).toContain('httpd -f -p 8082 -h /www');
    expect(top.stdout.trim().split('\n')).toHaveLength(2);
  });

  it("runs the README's web-server example as written", async () => {
    const readme = await readFile(join(import.meta.dirname, '..', 'README.md'), 'utf8');
    const block = /```sh\n((?:(?!```)[\s\S])*berth run -d --name web[\s\S]*?)```/.exec(readme)?.[1];
    expect(block).toBeDefined();
    // The example names its container web in the default store: none may be there from before.
    await berth(['rm', '-f', 'web']);
    try {
      const { stdout } = await exec('bash', ['-euo', 'pipefail', '-c', block!], { cwd: join(import.meta.dirname, '..'), timeout: 170_000 });
      expect(stdout).toContain('Hello World\n8082/tcp -> 127.0.0.1:8082\n');
      expect(stdout).toMatch(/\n\d+ \{"8082\/tcp":\[\{"HostIp":"127\.0\.0\.1","HostPort":"8082"\}\]\}\n/);
      expect(stdout).toContain('/bin/busybox httpd -f -p 8082 -h /www');
      expect(stdout).toMatch(/\nin [0-9a-f]{12}\n/);
    } finally {
      // The example uses the default store; a failure half-way must not leave its container.
      await berth(['rm', '-f', 'web']);
    }
  }, 180_000);

  it('leaves nothing after kill -9 of berth run once berth container prune ran', async () => {
    const port = await freePort();
    const child = spawn(process.execPath, [BERTH, 'run', '--root', root, '-q', '--name', 'orphan', '-p', `127.0.0.1:${port}:8082`, `oci:${layout}:web`], { stdio: 'ignore' });
    await serving(port);
    const id = (await b('inspect', '--format', '{{.Id}}', 'orphan')).stdout.trim();
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
    const pruned = await berth(['container', 'prune', '--root', root]);
    expect(pruned.stdout).toContain(id);
    await eventually(async () => (await leftovers(id)).length === 0);
    await expect(curl(`http://127.0.0.1:${port}/index.html`)).rejects.toThrow();
    expect(json<unknown[]>(await b('ps', '-a', '--json'))).toEqual([]);
  });
});
