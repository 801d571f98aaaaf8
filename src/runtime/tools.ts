// The host programs the runtime drives. Node cannot create namespaces, mount, mknod or
// chroot itself, so it uses util-linux (unshare, nsenter, setpriv, mount, script), GNU
// tar (for device nodes and xattrs) and coreutils. They are looked up once, by absolute
// path, so the setup script never depends on the container's PATH; `preflight` says in
// one message everything that is missing for `berth run`.

import { accessSync, constants, readFileSync } from 'node:fs';

const SEARCH_PATH = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

export const REQUIRED_TOOLS = ['unshare', 'nsenter', 'setpriv', 'mount', 'mknod', 'mkdir', 'ln', 'readlink', 'env', 'tar', 'sh', 'timeout'] as const;
export type HostToolName = (typeof REQUIRED_TOOLS)[number] | 'script' | 'ip' | 'slirp4netns' | 'ps';

const found = new Map<string, string | undefined>();

export function findHostTool(name: HostToolName): string | undefined {
  if (!found.has(name)) {
    const dirs = [...(process.env.PATH ?? '').split(':').filter((d) => d.startsWith('/')), ...SEARCH_PATH];
    found.set(
      name,
      dirs.map((d) => `${d}/${name}`).find((p) => {
        try {
          accessSync(p, constants.X_OK);
          return true;
        } catch {
          return false;
        }
      }),
    );
  }
  return found.get(name);
}

export function hostTool(name: HostToolName): string {
  const path = findHostTool(name);
  if (!path) throw new Error(`${name} is not installed (berth run needs util-linux, GNU tar and coreutils)`);
  return path;
}

export function overlaySupported(): boolean {
  try {
    return /\toverlay$/m.test(readFileSync('/proc/filesystems', 'utf8'));
  } catch {
    return false;
  }
}

/** Everything missing on this host for running containers, as readable sentences. */
export function preflight(): string[] {
  const problems: string[] = [];
  if (process.platform !== 'linux') problems.push(`containers need Linux (this is ${process.platform})`);
  if (process.getuid?.() !== 0) problems.push('containers need root (rootless mode is not supported)');
  const missing = REQUIRED_TOOLS.filter((t) => !findHostTool(t));
  if (missing.length > 0) problems.push(`missing host tools: ${missing.join(', ')} (install util-linux, GNU tar and coreutils)`);
  return problems;
}

/** Throws one clear error when the host cannot run containers. */
export function requireRuntimeHost(): void {
  const problems = preflight();
  if (problems.length > 0) throw new Error(`cannot run containers here: ${problems.join('; ')}`);
}
