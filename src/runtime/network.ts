// A container's network. The default mode gives it a network namespace of its own with
// outbound access through slirp4netns (user-mode networking, as rootless podman does):
// the container sees a tap device with 10.0.2.100, a gateway at 10.0.2.2 and a DNS
// forwarder at 10.0.2.3, while its traffic leaves through ordinary sockets of the host.
// Published ports (`-p`) are slirp4netns host forwards: slirp listens on the host
// address and port and connects to the container's. The container cannot reach the
// host's loopback services through the gateway (--disable-host-loopback), except when
// it publishes a UDP port: slirp drops the replies of a UDP forward otherwise (they go
// to the gateway address), so then the host's loopback is reachable, as with podman. Nothing is added to the host's
// interfaces, routes or firewall; what is added is
//   - the named namespace /run/netns/berth-<id> (made before the container so slirp and
//     the forwards are ready when its command starts),
//   - the slirp4netns process (killed with its parent through PDEATHSIG),
//   - its API socket under /run/berth (removed once the forwards are set).
// `releaseNetwork` removes them; it is idempotent, so the reaper can call it for a
// container whose berth was killed with -9.

import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdir, rm } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { findHostTool, hostTool } from './tools.js';

export type NetworkMode = 'slirp4netns' | 'none' | 'host';

export const CONTAINER_IP = '10.0.2.100';
const DNS_FORWARDER = '10.0.2.3';
const SOCKET_DIR = '/run/berth';
const SLIRP_READY_MS = 10_000;
const API_TIMEOUT_MS = 5_000;

export interface PortBinding {
  hostIp: string;
  /** 0 until a free port is picked for `-p CONTAINERPORT`. */
  hostPort: number;
  containerPort: number;
  protocol: 'tcp' | 'udp';
}

/** `--net` as docker and podman spell it; bridge and default mean this runtime's default. */
export function parseNetworkMode(text: string): NetworkMode {
  if (text === 'none' || text === 'host' || text === 'slirp4netns') return text;
  if (text === 'bridge' || text === 'default') return 'slirp4netns';
  throw new Error(`--net ${text}: expected bridge (the default, slirp4netns), none or host`);
}

/** docker's `-p [IP:][HOSTPORT:]CONTAINERPORT[/PROTO]`; `IP::PORT` and `PORT` pick a free host port. */
export function parsePublish(spec: string): PortBinding {
  const m = /^(?:(?:(\[[0-9a-fA-F:.]+\]|[0-9.]+):)?(\d*):)?(\d+)(?:\/(tcp|udp))?$/.exec(spec);
  const port = (text: string | undefined) => (text ? Number(text) : 0);
  if (!m) throw new Error(`invalid port mapping ${spec} (use [IP:][HOSTPORT:]CONTAINERPORT[/tcp|udp])`);
  const binding: PortBinding = {
    hostIp: m[1]?.replace(/^\[|\]$/g, '') ?? '0.0.0.0',
    hostPort: port(m[2]),
    containerPort: port(m[3]),
    protocol: (m[4] as 'tcp' | 'udp' | undefined) ?? 'tcp',
  };
  for (const p of [binding.hostPort, binding.containerPort]) if (p > 65535) throw new Error(`invalid port mapping ${spec}: ports go up to 65535`);
  if (binding.containerPort === 0) throw new Error(`invalid port mapping ${spec}: the container port must not be 0`);
  return binding;
}

/** The image's `ExposedPorts` keys (`80/tcp`) as bindings to free host ports, for `-P`. */
export function exposedBindings(exposed: string[]): PortBinding[] {
  return exposed.map((key) => parsePublish(key.includes('/') ? key : `${key}/tcp`));
}

/** `8082/tcp`: docker's key for a container port. */
export function portKey(b: { containerPort: number; protocol: string }): string {
  return `${b.containerPort}/${b.protocol}`;
}

/** Binds the host address once, so a port in use fails before anything starts; 0 picks a free port. */
function probePort(b: PortBinding): Promise<number> {
  return new Promise((resolve, reject) => {
    const fail = (err: NodeJS.ErrnoException) =>
      reject(new Error(err.code === 'EADDRINUSE'
        ? `cannot publish ${b.hostIp}:${b.hostPort}/${b.protocol}: the port is already in use on the host; choose another host port with -p`
        : `cannot publish ${b.hostIp}:${b.hostPort}/${b.protocol}: ${err.message}`));
    if (b.protocol === 'udp') {
      const s = createSocket(b.hostIp.includes(':') ? 'udp6' : 'udp4');
      s.once('error', fail);
      s.bind(b.hostPort, b.hostIp, () => {
        const { port } = s.address();
        s.close(() => resolve(port));
      });
      return;
    }
    const server = createServer();
    server.once('error', fail);
    server.listen({ host: b.hostIp, port: b.hostPort, exclusive: true }, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Checks every fixed host port is free and picks ports for the others. */
export async function reservePorts(bindings: PortBinding[]): Promise<PortBinding[]> {
  const out: PortBinding[] = [];
  for (const b of bindings) {
    const clash = out.find((o) => o.hostPort !== 0 && o.hostPort === b.hostPort && o.protocol === b.protocol && o.hostIp === b.hostIp);
    if (clash) throw new Error(`host port ${b.hostIp}:${b.hostPort}/${b.protocol} is published twice`);
    out.push({ ...b, hostPort: await probePort(b) });
  }
  return out;
}

export function netnsName(id: string): string {
  return `berth-${id.slice(0, 16)}`;
}

export function netnsPath(id: string): string {
  return join('/run/netns', netnsName(id));
}

function apiSocket(id: string): string {
  return join(SOCKET_DIR, `${id.slice(0, 16)}.sock`);
}

function runTool(file: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-2000)));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${file} ${args.join(' ')}: ${err.trim() || `exit ${code}`}`))));
  });
}

export interface ContainerNetwork {
  /** The namespace the container joins (nsenter --net=...). */
  netns: string;
  slirp: ChildProcess;
}

/**
 * Makes the container's namespace, starts slirp4netns in it and sets up the forwards.
 * On failure everything made so far is released before the error is thrown.
 */
export async function setupNetwork(id: string, ports: PortBinding[]): Promise<ContainerNetwork> {
  const ip = hostTool('ip');
  const slirpPath = findHostTool('slirp4netns');
  if (!slirpPath) throw new Error('slirp4netns is not installed: install it (Debian: apt-get install slirp4netns) or use --net none or --net host');
  await runTool(ip, ['netns', 'add', netnsName(id)]);
  try {
    await runTool(ip, ['-n', netnsName(id), 'link', 'set', 'lo', 'up']);
    await mkdir(SOCKET_DIR, { recursive: true });
    await rm(apiSocket(id), { force: true });
    const slirp = spawn(
      hostTool('setpriv'),
      // It dies with the berth process that waits for the container, whatever kills that.
      ['--pdeathsig=KILL', slirpPath, '--configure', '--mtu=65520', ...(ports.some((p) => p.protocol === 'udp') ? [] : ['--disable-host-loopback']), '--ready-fd=3',
        '--api-socket', apiSocket(id), '--netns-type=path', netnsPath(id), 'tap0'],
      { stdio: ['ignore', 'ignore', 'pipe', 'pipe'] },
    );
    const network = { netns: netnsPath(id), slirp };
    try {
      await slirpReady(slirp);
      for (const p of ports) await addForward(id, p);
    } catch (err) {
      await releaseNetwork(id, slirp);
      throw err;
    } finally {
      await rm(apiSocket(id), { force: true });
    }
    return network;
  } catch (err) {
    await releaseNetwork(id);
    throw err;
  }
}

function slirpReady(slirp: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    let stderr = '';
    slirp.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
    const timer = setTimeout(() => reject(new Error(`slirp4netns did not start in ${SLIRP_READY_MS} ms: ${stderr.trim()}`)), SLIRP_READY_MS);
    const ready = slirp.stdio[3] as NodeJS.ReadableStream;
    ready.once('data', () => {
      clearTimeout(timer);
      resolve();
    });
    slirp.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`slirp4netns exited (${code}): ${stderr.trim()}`));
    });
  });
}

/** One request on slirp4netns's API socket (one JSON object each way). */
function addForward(id: string, p: PortBinding): Promise<void> {
  const request = { execute: 'add_hostfwd', arguments: { proto: p.protocol, host_addr: p.hostIp, host_port: p.hostPort, guest_port: p.containerPort } };
  return new Promise((resolve, reject) => {
    const socket = connect(apiSocket(id));
    let answer = '';
    socket.setTimeout(API_TIMEOUT_MS, () => socket.destroy(new Error('slirp4netns did not answer')));
    socket.on('data', (d: Buffer) => (answer = (answer + d.toString()).slice(0, 64 * 1024)));
    socket.on('error', (err) => reject(new Error(`cannot publish ${p.hostIp}:${p.hostPort}/${p.protocol}: ${err.message}`)));
    socket.on('close', () => {
      const parsed = JSON.parse(answer || '{}') as { error?: { desc?: string } };
      if (parsed.error || !answer) reject(new Error(`cannot publish ${p.hostIp}:${p.hostPort}/${p.protocol}: ${parsed.error?.desc ?? 'no answer from slirp4netns'}`));
      else resolve();
    });
    socket.end(JSON.stringify(request));
  });
}

/** Stops slirp4netns (when given) and removes the namespace and the API socket; never throws. */
export async function releaseNetwork(id: string, slirp?: ChildProcess): Promise<void> {
  if (slirp && slirp.exitCode === null && slirp.signalCode === null) {
    const gone = new Promise((resolve) => slirp.once('close', resolve));
    slirp.kill('SIGKILL');
    await gone;
  }
  await rm(apiSocket(id), { force: true });
  const ip = findHostTool('ip');
  if (ip) await runTool(ip, ['netns', 'delete', netnsName(id)]).catch(() => undefined);
}

/** docker's /etc/hosts and resolv.conf content for a container. */
export function hostsFile(mode: NetworkMode, hostname: string, extra: string[]): string {
  const lines = mode === 'slirp4netns'
    ? ['127.0.0.1\tlocalhost', '::1\tlocalhost ip6-localhost ip6-loopback', `${CONTAINER_IP}\t${hostname}`]
    : [`127.0.0.1\tlocalhost ${hostname}`, '::1\tlocalhost ip6-localhost ip6-loopback'];
  for (const entry of extra) lines.push(parseAddHost(entry).join('\t'));
  return `${lines.join('\n')}\n`;
}

/** `--add-host NAME:IP` (or docker's newer NAME=IP) -> [ip, name]. */
export function parseAddHost(entry: string): [string, string] {
  const sep = entry.includes('=') ? entry.indexOf('=') : entry.indexOf(':');
  const name = entry.slice(0, sep);
  const address = entry.slice(sep + 1);
  if (sep <= 0 || !/^[a-zA-Z0-9][a-zA-Z0-9.-]*$/.test(name) || !/^[0-9a-fA-F:.]+$/.test(address)) {
    throw new Error(`invalid --add-host ${entry} (use NAME:IP)`);
  }
  return [address, name];
}

export function resolvConf(mode: NetworkMode, dns: string[], host: string | undefined): string | undefined {
  for (const d of dns) if (!/^[0-9a-fA-F:.]+$/.test(d)) throw new Error(`invalid --dns ${d}: expected an IP address`);
  if (dns.length > 0) return dns.map((d) => `nameserver ${d}\n`).join('');
  if (mode === 'slirp4netns') return `nameserver ${DNS_FORWARDER}\n`;
  return mode === 'host' ? host : undefined;
}
