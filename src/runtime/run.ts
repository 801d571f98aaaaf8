// Running one container: resolve the image in an OCI layout, make sure its layers are
// unpacked, create the container (state, writable layer, cgroups), start it in new
// namespaces through the setup script, pass signals on, wait, record how it ended and
// clean up. The result is the container's exit status, as a shell reports it
// (128 + signal number when a signal killed it: 137 for the OOM killer's SIGKILL).

import { spawn, type StdioOptions } from 'node:child_process';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { constants as osConstants } from 'node:os';
import { isAbsolute, join, posix, relative } from 'node:path';
import { createCgroup, type Cgroup, type Limits } from './cgroups.js';
import { Containers, type ContainerState } from './containers.js';
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
  name?: string;
  hostname?: string;
  /** `K=V`, or `K` to pass the host's value on. */
  env?: string[];
  workdir?: string;
  user?: string;
  limits?: Limits;
  net?: 'none' | 'host';
  /** `HOST:CONTAINER[:ro]`. */
  volumes?: string[];
  /** Give the container a terminal of its own (a new pseudo-terminal). */
  tty?: boolean;
  /** Keep stdin attached (otherwise the container's stdin is empty). */
  interactive?: boolean;
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
function containerEnv(imageEnv: string[], extra: string[], defaults: Record<string, string>): string[] {
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
 * /etc/hostname, /etc/hosts and (with the host's network) /etc/resolv.conf, as docker
 * provides them: written into the container's directory and bind-mounted over the image's.
 */
async function etcFiles(dir: string, hostname: string, net: 'none' | 'host'): Promise<Volume[]> {
  const files: Record<string, string> = { hostname: `${hostname}\n` };
  if (net === 'host') {
    for (const f of ['hosts', 'resolv.conf']) {
      const content = await readFile(join('/etc', f), 'utf8').catch(() => undefined);
      if (content !== undefined) files[f] = content;
    }
  } else {
    files.hosts = `127.0.0.1\tlocalhost ${hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n`;
  }
  const volumes: Volume[] = [];
  for (const [name, content] of Object.entries(files)) {
    await writeFile(join(dir, name), content);
    volumes.push({ host: join(dir, name), container: `/etc/${name}`, readonly: false, directory: false, optional: true });
  }
  return volumes;
}

function exitStatus(code: number | null, signal: NodeJS.Signals | null): number {
  if (signal) return 128 + (osConstants.signals[signal] ?? 0);
  return code ?? 1;
}

const FORWARDED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'];

export async function runContainer(store: RuntimeStore, opts: RunOptions): Promise<RunResult> {
  requireRuntimeHost();
  await store.init();
  const image = await resolveImage(opts.layout, opts.ref);
  const layers = await store.ensureLayers(image.layers, opts.onUnpack);
  const cfg = image.config.config ?? {};
  const argv = [...(cfg.Entrypoint ?? []), ...(opts.command && opts.command.length > 0 ? opts.command : (cfg.Cmd ?? []))];
  if (argv.length === 0) throw new Error(`no command: the image ${opts.imageName} has neither Entrypoint nor Cmd; give one after the image`);
  const workdir = opts.workdir ?? (cfg.WorkingDir || '/');
  if (!workdir.startsWith('/')) throw new Error(`the working directory must be absolute: ${workdir}`);
  const volumes = await parseVolumes(opts.volumes ?? []);
  const mode = rootfsMode();

  const containers = new Containers(store);
  let state = await containers.create({
    name: opts.name,
    image: opts.imageName,
    imageId: image.manifestDigest,
    layers: image.layers.map((l) => l.diffId),
    command: argv,
    rootfs: mode,
    autoRemove: opts.autoRemove ?? false,
  });
  const dir = containers.dir(state.id);
  const hostname = opts.hostname ?? state.id.slice(0, 12);
  let cgroup: Cgroup | undefined;
  try {
    const rootfs = join(dir, 'rootfs');
    await mkdir(rootfs);
    let overlay;
    if (mode === 'overlay') {
      await mkdir(join(dir, 'upper'));
      await mkdir(join(dir, 'work'));
      overlay = {
        cwd: store.layers,
        lowers: [...layers].reverse().map((l) => relative(store.layers, l.diff)),
        upper: join(dir, 'upper'),
        work: join(dir, 'work'),
      };
    } else {
      await mergeLayers(layers, rootfs);
    }
    const user = await resolveUser(opts.user ?? cfg.User, (p) => readImageFile(layers, p));
    const env = containerEnv(cfg.Env ?? [], opts.env ?? [], {
      PATH: DEFAULT_PATH,
      HOSTNAME: hostname,
      HOME: user.home,
      ...(opts.tty ? { TERM: 'xterm' } : {}),
    });
    volumes.push(...(await etcFiles(dir, hostname, opts.net ?? 'none')));
    cgroup = await createCgroup(state.id, opts.limits ?? {});
    const pidFile = join(dir, 'pid');
    const script = setupScript({
      rootfs,
      overlay,
      cgroupProcs: cgroup?.procsFiles ?? [],
      pidFile,
      hostname,
      net: opts.net ?? 'none',
      volumes,
      workdir,
    });
    const command = [
      hostTool('setpriv'),
      // If berth dies, the waiter dies, and so does the container (its PID 1 has the same death signal).
      '--pdeathsig=KILL',
      hostTool('unshare'),
      '--pid', '--mount', '--uts', '--ipc', '--propagation=private',
      ...(opts.net === 'host' ? [] : ['--net']),
      // Without --fork, unshare's process stays in the host's PID namespace and its first
      // child is PID 1 of the new one. `timeout 0` (no time limit) waits for it and dies of
      // the same signal when a signal killed it; unshare --fork would report a SIGKILLed
      // child (the OOM killer's doing) as plain exit 1.
      hostTool('timeout'), '--foreground', '0',
      hostTool('setpriv'), '--pdeathsig=KILL',
      hostTool('sh'), '-c', script, 'berth-setup',
      ...execArgs(env, workdir, user.uid, user.gid, argv),
    ];

    state = { ...state, status: 'running' };
    await containers.save(state);
    const { code, signal } = await spawnContainer(command, opts, pidFile);
    const exitCode = exitStatus(code, signal);
    const pid = Number(await readFile(pidFile, 'utf8').catch(() => '0')) || undefined;
    state = { ...state, status: 'exited', pid, exitCode, oomKilled: (await cgroup?.oomKilled()) ?? false, finished: new Date().toISOString() };
    await containers.save(state);
    return { exitCode, container: state };
  } catch (err) {
    // It never ran: record that (125, as docker) so `ps -a` and `prune` see a stopped container.
    if (!opts.autoRemove) await containers.save({ ...state, status: 'exited', exitCode: 125, finished: new Date().toISOString() });
    throw err;
  } finally {
    await cgroup?.remove();
    if (opts.autoRemove) await containers.remove(state.id);
  }
}

/**
 * Starts the namespaces and waits for them. With a terminal, util-linux `script` puts the
 * container on a new pseudo-terminal (Node cannot make one). Without, the container runs
 * in a session of its own, so a Ctrl-C reaches berth only, and berth passes each signal
 * it gets to the container's PID 1 (which, like any init, ignores those it has no
 * handler for).
 */
function spawnContainer(command: string[], opts: RunOptions, pidFile: string): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  const stdio: StdioOptions = opts.stdio ?? [opts.interactive || opts.tty ? 'inherit' : 'ignore', 'inherit', 'inherit'];
  const [file, ...args] = opts.tty
    ? [hostTool('script'), '--quiet', '--return', '--command', command.map(shq).join(' '), '/dev/null']
    : command;
  const child = spawn(file!, args, {
    stdio,
    detached: !opts.tty,
    env: opts.tty ? { ...process.env, SHELL: hostTool('sh') } : process.env,
  });
  const forward = (signal: NodeJS.Signals) => {
    readFile(pidFile, 'utf8').then(
      (pid) => process.kill(Number(pid), signal),
      () => child.kill(signal),
    ).catch(() => undefined);
  };
  for (const s of FORWARDED) process.on(s, forward);
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      for (const s of FORWARDED) process.off(s, forward);
      resolve({ code, signal });
    });
  });
}
