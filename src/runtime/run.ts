// Running one container, in two steps as docker has them. `createContainer` resolves the
// image in an OCI layout, makes sure its layers are unpacked and records the container
// (state, writable layer). `startContainer` gives it cgroups and a network, starts it in
// new namespaces through the setup script, passes signals on, waits, records how it
// ended and releases what it added to the host. `runContainer` does both (attached);
// `startDetached` hands the start to a monitor process (`run -d`). `berth build` runs its
// steps through the same functions. The result is the container's exit status, as a shell reports it
// (128 + signal number when a signal killed it: 137 for the OOM killer's SIGKILL).

import { spawn, type ChildProcess, type SpawnOptions, type StdioOptions } from 'node:child_process';
import { mkdir, open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { constants as osConstants } from 'node:os';
import { isAbsolute, join, posix, relative } from 'node:path';
import { createCgroup, oomKilled, procsFiles, removeCgroup, type CgroupDir, type Limits } from './cgroups.js';
import { Containers, processStart, thisProcess, type ContainerConfig, type ContainerState } from './containers.js';
import {
  exposedBindings, hostsFile, parseAddHost, portKey, releaseNetwork, reservePorts, resolvConf, setupNetwork,
  type ContainerNetwork, type NetworkMode, type PortBinding,
} from './network.js';
import { resolveImage, type LayerRef } from './image-layout.js';
import { mergeLayers, readImageFile, rootfsMode } from './rootfs.js';
import { execArgs, setupScript, shq, type Volume } from './setup-script.js';
import type { RuntimeStore } from './store.js';
import { hostTool, requireRuntimeHost } from './tools.js';
import { resolveUser } from './user.js';

export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface RunOptions {
  /** The OCI layout holding the image, and the image's ref name (or digest) in it. */
  layout: string;
  ref: string;
  /** How the user named the image (recorded for `berth ps`). */
  imageName: string;
  /** Replaces the image's Cmd (the Entrypoint stays). */
  command?: string[];
  /** Replaces the image's Entrypoint (and then its Cmd too, as docker does). */
  entrypoint?: string[];
  name?: string;
  hostname?: string;
  /** `K=V`, or `K` to pass the host's value on. */
  env?: string[];
  workdir?: string;
  user?: string;
  limits?: Limits;
  /** Default slirp4netns: a namespace of its own with outbound access. */
  net?: NetworkMode;
  /** `-p`: host ports to publish (host port 0: a free one is picked). */
  ports?: PortBinding[];
  /** `-P`: publish every port the image EXPOSEs on a free host port. */
  publishAll?: boolean;
  dns?: string[];
  addHosts?: string[];
  labels?: Record<string, string>;
  /** `HOST:CONTAINER[:ro]`. */
  volumes?: string[];
  /** Give the container a terminal of its own (a new pseudo-terminal). */
  tty?: boolean;
  /** Keep stdin attached (otherwise the container's stdin is empty). */
  interactive?: boolean;
  /** Started by a detached monitor: output goes to container.log. */
  detached?: boolean;
  autoRemove?: boolean;
  stdio?: StdioOptions;
  /** Told about each layer actually unpacked (for progress). */
  onUnpack?: (layer: LayerRef) => void;
}

export interface RunResult {
  exitCode: number;
  container: ContainerState;
}

/** Builds the environment: the image's, PATH and HOSTNAME and HOME if missing, then `-e`. */
export function containerEnv(imageEnv: string[], extra: string[], defaults: Record<string, string>): string[] {
  const env = new Map<string, string>();
  const put = (entry: string) => {
    const eq = entry.indexOf('=');
    if (eq <= 0) {
      // `-e NAME` passes the host's value on, as docker does; unset on the host means left out.
      const value = process.env[entry];
      if (value !== undefined && entry !== '') env.set(entry, value);
      return;
    }
    env.set(entry.slice(0, eq), entry.slice(eq + 1));
  };
  imageEnv.forEach(put);
  for (const [k, v] of Object.entries(defaults)) if (!env.has(k)) env.set(k, v);
  extra.forEach(put);
  for (const k of env.keys()) if (k.startsWith('-')) throw new Error(`invalid environment variable name ${k}`);
  return [...env].map(([k, v]) => `${k}=${v}`);
}

async function parseVolumes(specs: string[]): Promise<Volume[]> {
  const out: Volume[] = [];
  for (const spec of specs) {
    const [host, container, mode, ...rest] = spec.split(':');
    if (!host || !container || rest.length > 0 || (mode !== undefined && mode !== 'ro' && mode !== 'rw')) {
      throw new Error(`invalid volume ${spec} (use HOST:CONTAINER[:ro])`);
    }
    if (!isAbsolute(host) || !container.startsWith('/')) throw new Error(`volume paths must be absolute: ${spec}`);
    if (container.split('/').includes('..')) throw new Error(`volume target may not contain ..: ${spec}`);
    const st = await stat(host).catch(() => undefined);
    if (!st) throw new Error(`volume source ${host} does not exist`);
    out.push({ host, container: posix.normalize(container), readonly: mode === 'ro', directory: st.isDirectory() });
  }
  return out;
}

/**
 * /etc/hostname, /etc/hosts and /etc/resolv.conf, as docker provides them: written into
 * the container's directory and bind-mounted over the image's.
 */
async function etcFiles(dir: string, config: ContainerConfig): Promise<Volume[]> {
  const files: Record<string, string | undefined> = { hostname: `${config.hostname}\n` };
  const host = async (f: string) => readFile(join('/etc', f), 'utf8').catch(() => undefined);
  files.hosts = config.net === 'host' && config.addHosts.length === 0 ? await host('hosts') : hostsFile(config.net, config.hostname, config.addHosts);
  files['resolv.conf'] = resolvConf(config.net, config.dns, await host('resolv.conf'));
  const volumes: Volume[] = [];
  for (const [name, content] of Object.entries(files)) {
    if (content === undefined) continue;
    await writeFile(join(dir, name), content);
    volumes.push({ host: join(dir, name), container: `/etc/${name}`, readonly: false, directory: false, optional: true });
  }
  return volumes;
}

/** A child's end as a shell reports it: 128 + the signal number when a signal killed it. */
export function exitStatus(code: number | null, signal: NodeJS.Signals | null): number {
  if (signal) return 128 + (osConstants.signals[signal] ?? 0);
  return code ?? 1;
}

/** How long `run -d` waits for the monitor to report the container running. */
const DETACHED_START_TIMEOUT_MS = 120_000;

const FORWARDED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'];

/**
 * Creates a container from an image in a layout: resolves it, unpacks its layers, works
 * out everything it runs with (recorded in its state) and prepares its writable layer.
 * Nothing runs yet; `startContainer` does that.
 */
export async function createContainer(store: RuntimeStore, opts: RunOptions): Promise<ContainerState> {
  await store.init();
  const image = await resolveImage(opts.layout, opts.ref);
  const layers = await store.ensureLayers(image.layers, opts.onUnpack);
  const cfg = image.config.config ?? {};
  const entrypoint = opts.entrypoint ?? cfg.Entrypoint ?? [];
  const cmd = opts.command && opts.command.length > 0 ? opts.command : opts.entrypoint ? [] : (cfg.Cmd ?? []);
  const argv = [...entrypoint, ...cmd];
  if (argv.length === 0) throw new Error(`no command: the image ${opts.imageName} has neither Entrypoint nor Cmd; give one after the image`);
  const workdir = opts.workdir ?? (cfg.WorkingDir || '/');
  if (!workdir.startsWith('/')) throw new Error(`the working directory must be absolute: ${workdir}`);
  const net = opts.net ?? 'slirp4netns';
  const exposedPorts = Object.keys(cfg.ExposedPorts ?? {});
  const ports = [...(opts.ports ?? []), ...(opts.publishAll ? exposedBindings(exposedPorts) : [])];
  if (ports.length > 0 && net !== 'slirp4netns') throw new Error(`--net ${net} cannot publish ports (-p/-P): the container has no network of its own to forward to`);
  const volumes = await parseVolumes(opts.volumes ?? []);
  const userSpec = opts.user ?? cfg.User ?? '';
  const user = await resolveUser(userSpec, (p) => readImageFile(layers, p));
  const mode = rootfsMode();
  const limits = opts.limits ?? {};
  if (limits.memorySwap !== undefined) {
    if (limits.memory === undefined) throw new Error('--memory-swap needs --memory (it is the limit of memory plus swap)');
    if (limits.memorySwap !== -1 && limits.memorySwap < limits.memory) throw new Error('--memory-swap must be at least --memory (or -1 for unlimited swap)');
  }

  const containers = new Containers(store);
  const config: ContainerConfig = {
    entrypoint,
    cmd,
    env: [],
    workdir,
    user: userSpec,
    uid: user.uid,
    gid: user.gid,
    home: user.home,
    hostname: opts.hostname ?? '',
    exposedPorts: [...new Set([...exposedPorts, ...ports.map(portKey)])],
    labels: { ...(cfg.Labels ?? {}), ...(opts.labels ?? {}) },
    limits,
    net,
    ports,
    volumes,
    dns: opts.dns ?? [],
    addHosts: opts.addHosts ?? [],
    tty: opts.tty ?? false,
    interactive: opts.interactive ?? false,
    detached: opts.detached ?? false,
  };
  config.addHosts.forEach(parseAddHost);
  resolvConf(net, config.dns, undefined);
  const state = await containers.create({
    name: opts.name,
    image: opts.imageName,
    imageId: image.manifestDigest,
    layers: image.layers.map((l) => l.diffId),
    command: argv,
    rootfs: mode,
    autoRemove: opts.autoRemove ?? false,
    config,
  });
  // The short id is the default hostname, known only now.
  state.config.hostname ||= state.id.slice(0, 12);
  state.config.env = containerEnv(cfg.Env ?? [], opts.env ?? [], {
    PATH: DEFAULT_PATH,
    HOSTNAME: state.config.hostname,
    HOME: user.home,
    ...(opts.tty ? { TERM: 'xterm' } : {}),
  });
  const dir = containers.dir(state.id);
  try {
    await mkdir(join(dir, 'rootfs'));
    if (mode === 'overlay') {
      await mkdir(join(dir, 'upper'));
      await mkdir(join(dir, 'work'));
    } else {
      await mergeLayers(layers, join(dir, 'rootfs'));
    }
    await containers.save(state);
  } catch (err) {
    await containers.save({ ...state, status: 'exited', exitCode: 125, finished: new Date().toISOString() });
    throw err;
  }
  return state;
}

export interface StartOptions {
  stdio?: StdioOptions;
  /** Called once the container's PID 1 runs (its pid is recorded). */
  onStarted?: (state: ContainerState) => void;
}

/**
 * Starts a created container and waits for it: cgroups, network (namespace, slirp4netns,
 * published ports; a port in use fails here, before anything runs), then the namespaces.
 * Records how it ended and releases everything it added to the host.
 */
export async function startContainer(store: RuntimeStore, created: ContainerState, opts: StartOptions = {}): Promise<RunResult> {
  requireRuntimeHost();
  const containers = new Containers(store);
  const dir = containers.dir(created.id);
  const config = created.config;
  let state: ContainerState = { ...created, monitor: thisProcess() };
  let cgroups: CgroupDir[] = [];
  let network: ContainerNetwork | undefined;
  try {
    await containers.save(state);
    const layers = await Promise.all(state.layers.map(async (diffId) => {
      const layer = await store.readLayer(diffId);
      if (!layer) throw new Error(`layer ${diffId} of ${state.image} is no longer unpacked (was it pruned?)`);
      return layer;
    }));
    const overlay = state.rootfs === 'overlay'
      ? {
          cwd: store.layers,
          lowers: [...layers].reverse().map((l) => relative(store.layers, l.diff)),
          upper: join(dir, 'upper'),
          work: join(dir, 'work'),
        }
      : undefined;
    cgroups = await createCgroup(state.id, config.limits);
    state = { ...state, cgroups };
    await containers.save(state);
    if (config.net === 'slirp4netns') {
      const ports = await reservePorts(config.ports);
      network = await setupNetwork(state.id, ports);
      state = { ...state, ports };
    }
    const pidFile = join(dir, 'pid');
    await rm(pidFile, { force: true });
    const script = setupScript({
      rootfs: join(dir, 'rootfs'),
      overlay,
      cgroupProcs: procsFiles(cgroups),
      pidFile,
      hostname: config.hostname,
      net: config.net,
      volumes: [...config.volumes, ...(await etcFiles(dir, config))],
      workdir: config.workdir,
    });
    const command = [
      hostTool('setpriv'),
      // If berth dies, the waiter dies, and so does the container (its PID 1 has the same death signal).
      '--pdeathsig=KILL',
      ...(network ? [hostTool('nsenter'), `--net=${network.netns}`] : []),
      hostTool('unshare'),
      '--pid', '--mount', '--uts', '--ipc', '--propagation=private',
      ...(config.net === 'none' ? ['--net'] : []),
      // Without --fork, unshare's process stays in the host's PID namespace and its first
      // child is PID 1 of the new one. `timeout 0` (no time limit) waits for it and dies of
      // the same signal when a signal killed it; unshare --fork would report a SIGKILLed
      // child (the OOM killer's doing) as plain exit 1.
      hostTool('timeout'), '--foreground', '0',
      hostTool('setpriv'), '--pdeathsig=KILL',
      hostTool('sh'), '-c', script, 'berth-setup',
      ...execArgs(config.env, config.workdir, config.uid, config.gid, state.command),
    ];

    state = { ...state, status: 'running', started: new Date().toISOString() };
    await containers.save(state);
    const { code, signal } = await spawnContainer(command, config, opts.stdio, pidFile, async (pid) => {
      state = { ...state, pid, pidStart: processStart(pid) };
      await containers.save(state);
      opts.onStarted?.(state);
    });
    const exitCode = exitStatus(code, signal);
    state = { ...state, status: 'exited', exitCode, oomKilled: await oomKilled(cgroups), finished: new Date().toISOString() };
    await containers.save(state);
    return { exitCode, container: state };
  } catch (err) {
    // It never ran: record that (125, as docker) so `ps -a` and `prune` see a stopped container.
    const error = err instanceof Error ? err.message : String(err);
    if (!state.autoRemove) await containers.save({ ...state, status: 'exited', exitCode: 125, error, finished: new Date().toISOString() });
    throw err;
  } finally {
    if (network || config.net === 'slirp4netns') await releaseNetwork(state.id, network?.slirp);
    await removeCgroup(cgroups);
    if (state.autoRemove) await containers.remove(state.id);
  }
}

/** Creates a container and runs it to its end, attached (what `berth run` without -d does). */
export async function runContainer(store: RuntimeStore, opts: RunOptions): Promise<RunResult> {
  requireRuntimeHost();
  const state = await createContainer(store, opts);
  return startContainer(store, state, { stdio: opts.stdio });
}

/**
 * Starts a created container detached: `monitor` (a command line that runs
 * `startContainer` in a new session: berth's hidden `container monitor`) waits for it,
 * with the container's output going to container.log. Resolves once its PID 1 runs, or
 * throws the error the monitor recorded in the state when it could not start it.
 */
export async function startDetached(store: RuntimeStore, state: ContainerState, monitor: string[]): Promise<ContainerState> {
  const containers = new Containers(store);
  const log = await open(containers.logFile(state.id), 'a');
  let exited = false;
  try {
    const [file, ...args] = monitor;
    const child = spawn(file!, args, { stdio: ['ignore', log.fd, log.fd], detached: true });
    child.on('exit', () => (exited = true));
    child.on('error', () => (exited = true));
    child.unref();
  } finally {
    await log.close();
  }
  const deadline = Date.now() + DETACHED_START_TIMEOUT_MS;
  for (;;) {
    if (Date.now() > deadline) throw new Error(`the container did not start in ${DETACHED_START_TIMEOUT_MS / 1000} s (see berth logs ${state.id.slice(0, 12)})`);
    const now = await containers.read(state.id);
    // A --rm container that ended at once is already gone: it ran.
    if (!now && exited) return state;
    if (now?.pid && now.status === 'running') return now;
    if (now?.status === 'exited') throw new Error(now.error ?? `the container exited (${now.exitCode}) as it started`);
    if (exited && now?.status !== 'running') throw new Error(`the container's monitor exited before starting it (see berth logs ${state.id.slice(0, 12)})`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Spawns `command`, on a new pseudo-terminal when `tty` (util-linux `script` makes it:
 * Node cannot), as `berth run -t` and `berth exec -t` do.
 */
export function spawnOnTerminal(command: string[], tty: boolean, opts: SpawnOptions): ChildProcess {
  const [file, ...args] = tty ? [hostTool('script'), '--quiet', '--return', '--command', command.map(shq).join(' '), '/dev/null'] : command;
  return spawn(file!, args, { ...opts, env: tty ? { ...process.env, SHELL: hostTool('sh') } : process.env });
}

/**
 * Starts the namespaces and waits for them. With a terminal, util-linux `script` puts the
 * container on a new pseudo-terminal (Node cannot make one). Without, the container runs
 * in a session of its own, so a Ctrl-C reaches berth only, and berth passes each signal
 * it gets to the container's PID 1 (which, like any init, ignores those it has no
 * handler for); a second Ctrl-C kills it, as a PID 1 that ignores SIGINT would
 * otherwise never stop.
 */
async function spawnContainer(
  command: string[],
  config: ContainerConfig,
  stdio: StdioOptions | undefined,
  pidFile: string,
  onPid: (pid: number) => Promise<void>,
): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  const child = spawnOnTerminal(command, config.tty, {
    stdio: stdio ?? [config.interactive || config.tty ? 'inherit' : 'ignore', 'inherit', 'inherit'],
    detached: !config.tty,
  });
  let closed = false;
  const result = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      closed = true;
      resolve({ code, signal });
    });
  });
  let pid: number | undefined;
  let interrupts = 0;
  const forward = (signal: NodeJS.Signals) => {
    if (signal === 'SIGINT' && ++interrupts >= 2) signal = 'SIGKILL';
    if (pid) process.kill(pid, signal);
    else child.kill(signal);
  };
  for (const s of FORWARDED) process.on(s, forward);
  try {
    // The setup script writes PID 1's host pid first thing; until then signals go to the chain.
    while (!closed && !pid) {
      pid = Number(await readFile(pidFile, 'utf8').catch(() => '')) || undefined;
      if (!pid) await Promise.race([result, new Promise((r) => setTimeout(r, 10))]);
    }
    if (pid) await onPid(pid);
    return await result;
  } finally {
    for (const s of FORWARDED) process.off(s, forward);
  }
}
