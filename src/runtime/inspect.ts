// A container as `docker inspect` shows it: the same field names and shapes, so scripts
// written against docker (`--format '{{.State.Pid}}'`, `.HostConfig.Memory`,
// `.NetworkSettings.Ports`) work unchanged. Built from the container's recorded state.

import type { ContainerState } from './containers.js';
import { isRunning } from './lifecycle.js';
import { CONTAINER_IP, portKey, type PortBinding } from './network.js';

const ZERO_TIME = '0001-01-01T00:00:00Z';

type PortMap = Record<string, { HostIp: string; HostPort: string }[] | null>;

function portMap(exposed: string[], bindings: PortBinding[]): PortMap {
  const map: PortMap = {};
  for (const key of exposed) map[key] = null;
  for (const b of bindings) (map[portKey(b)] ??= []).push({ HostIp: b.hostIp, HostPort: b.hostPort === 0 ? '' : String(b.hostPort) });
  return map;
}

export function dockerInspect(c: ContainerState): Record<string, unknown> {
  const cfg = c.config;
  const running = isRunning(c);
  const status = running ? 'running' : c.status === 'running' ? 'exited' : c.status;
  const limits = cfg.limits;
  const ports = c.ports ?? cfg.ports;
  return {
    Id: c.id,
    Created: c.created,
    Path: c.command[0],
    Args: c.command.slice(1),
    State: {
      Status: status,
      Running: running,
      Paused: false,
      Restarting: false,
      OOMKilled: c.oomKilled ?? false,
      Dead: false,
      Pid: running ? c.pid : 0,
      ExitCode: c.exitCode ?? 0,
      Error: c.error ?? '',
      StartedAt: c.started ?? ZERO_TIME,
      FinishedAt: c.finished ?? ZERO_TIME,
    },
    Image: c.imageId,
    Name: `/${c.name}`,
    Driver: c.rootfs === 'overlay' ? 'overlay2' : 'vfs',
    HostConfig: {
      Binds: cfg.volumes.map((v) => `${v.host}:${v.container}${v.readonly ? ':ro' : ''}`),
      NetworkMode: cfg.net,
      PortBindings: portMap([], cfg.ports),
      AutoRemove: c.autoRemove,
      Dns: cfg.dns,
      ExtraHosts: cfg.addHosts,
      Memory: limits.memory ?? 0,
      // Without --memory-swap the container gets no swap: memory plus swap is the memory limit.
      MemorySwap: limits.memorySwap ?? limits.memory ?? 0,
      CpuShares: limits.cpuShares ?? 0,
      NanoCpus: limits.cpus === undefined ? 0 : Math.round(limits.cpus * 1e9),
      CpusetCpus: limits.cpusetCpus ?? '',
      PidsLimit: limits.pids ?? null,
    },
    Config: {
      Hostname: cfg.hostname,
      User: cfg.user,
      Tty: cfg.tty,
      OpenStdin: cfg.interactive,
      Env: cfg.env,
      Cmd: cfg.cmd,
      Image: c.image,
      WorkingDir: cfg.workdir,
      Entrypoint: cfg.entrypoint.length > 0 ? cfg.entrypoint : null,
      ExposedPorts: Object.fromEntries(cfg.exposedPorts.map((p) => [p, {}])),
      Labels: cfg.labels,
    },
    NetworkSettings: {
      Ports: cfg.net === 'slirp4netns' ? portMap(cfg.exposedPorts, running ? ports : []) : {},
      IPAddress: cfg.net === 'slirp4netns' ? CONTAINER_IP : '',
      Gateway: cfg.net === 'slirp4netns' ? '10.0.2.2' : '',
    },
    Mounts: cfg.volumes
      .filter((v) => !v.optional)
      .map((v) => ({ Type: 'bind', Source: v.host, Destination: v.container, Mode: v.readonly ? 'ro' : '', RW: !v.readonly, Propagation: 'rprivate' })),
  };
}
