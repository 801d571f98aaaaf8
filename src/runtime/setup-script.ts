// The shell script that turns a fresh set of namespaces into a container. `unshare`
// creates the namespaces and forks this script as PID 1 of the new PID namespace; the
// script, still seeing the host's files but in its own (private) mount namespace,
// joins the cgroups, mounts the layers, /proc, a minimal /dev, /sys and the volumes,
// sets the hostname, then execs the container's command through
//   env -i (the image's environment only) -> setpriv (docker's default capabilities)
//   -> nsenter --root (chroot into the rootfs, working directory, uid and gid)
// so the command replaces the script and is PID 1 itself. Every mount is made inside
// the container's mount namespace and disappears with it: nothing to unmount on exit.
//
// The script's values are quoted into it; the final command line is passed as its
// arguments ("$@"), so nothing the user typed is ever parsed by a shell.

import type { NetworkMode } from './network.js';
import { hostTool, findHostTool } from './tools.js';

export interface SetupPlan {
  /** Where the container's root is (the overlay mount point, or the merged copy). */
  rootfs: string;
  /** Overlay layers; absent in copy mode, where `rootfs` is already complete. */
  overlay?: { cwd: string; lowers: string[]; upper: string; work: string };
  cgroupProcs: string[];
  pidFile: string;
  hostname: string;
  net: NetworkMode;
  volumes: Volume[];
  workdir: string;
}

export interface Volume {
  host: string;
  container: string;
  readonly: boolean;
  /** True when the host side is a directory (the mount point is made to match). */
  directory: boolean;
  /** Skipped, not an error, when the image has a symlink in the way (the /etc files berth provides). */
  optional?: boolean;
}

/** Single-quotes a value for sh. */
export function shq(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** Linux's default capabilities for containers (docker's list); everything else is dropped. */
const CAPABILITIES = [
  'chown', 'dac_override', 'fsetid', 'fowner', 'mknod', 'net_raw', 'setgid', 'setuid',
  'setfcap', 'setpcap', 'net_bind_service', 'sys_chroot', 'kill', 'audit_write',
];

/**
 * Arguments after the script (or after `env -i`): env, capabilities, chroot and user,
 * then the command. `root` is "." for the setup script (the container's root, moved onto
 * /, is its working directory at exec); `berth exec` gives /proc/PID/root.
 */
export function execArgs(env: string[], workdir: string, uid: number, gid: number, argv: string[], root = '.'): string[] {
  return [
    ...env,
    hostTool('setpriv'),
    `--bounding-set=-all,${CAPABILITIES.map((c) => `+${c}`).join(',')}`,
    hostTool('nsenter'),
    `--root=${root}`,
    `--wdns=${workdir}`,
    `--setuid=${uid}`,
    `--setgid=${gid}`,
    '--',
    ...argv,
  ];
}

/** The device nodes of a container's /dev: name, major, minor. */
const DEVICES: [string, number, number][] = [
  ['null', 1, 3], ['zero', 1, 5], ['full', 1, 7], ['random', 1, 8], ['urandom', 1, 9], ['tty', 5, 0],
];

export function setupScript(plan: SetupPlan): string {
  const t = {
    mount: shq(hostTool('mount')),
    mkdir: shq(hostTool('mkdir')),
    mknod: shq(hostTool('mknod')),
    ln: shq(hostTool('ln')),
    env: shq(hostTool('env')),
    readlink: shq(hostTool('readlink')),
  };
  const lines = [
    'set -u',
    `fail() { echo "berth: $*" >&2; exit 125; }`,
    `R=${shq(plan.rootfs)}`,
    // inroot PATH dir|file [optional]: sets P to the path inside the rootfs, creating what is
    // missing, and refuses to go through a symlink of the image (which could point anywhere on
    // the host): a failure, or with `optional` a false return (the mount is skipped).
    `inroot() {
  P="$R"; rest="\${1#/}"
  while [ -n "$rest" ]; do
    c="\${rest%%/*}"
    if [ "$c" = "$rest" ]; then rest=; else rest="\${rest#*/}"; fi
    [ -z "$c" ] && continue
    P="$P/$c"
    if [ -L "$P" ]; then
      [ "\${3:-}" = optional ] && return 1
      fail "$1 goes through a symbolic link of the image"
    fi
    if [ -n "$rest" ] || [ "$2" = dir ]; then
      [ -d "$P" ] || ${t.mkdir} "$P" || fail "cannot create $1 in the container"
    else
      [ -e "$P" ] || : > "$P" || fail "cannot create $1 in the container"
    fi
  done
}`,
    // Cgroups first, so everything the container does from here on is accounted.
    ...plan.cgroupProcs.map((f) => `echo $$ > ${shq(f)} || fail "cannot join the cgroup ${f}"`),
    // This shell's pid as the host sees it (the host's /proc is still mounted here), for signals and `berth ps`.
    `read -r hostpid _ < /proc/self/stat && echo "$hostpid" > ${shq(plan.pidFile)} || fail "cannot record the container's pid"`,
  ];
  if (plan.overlay) {
    const o = plan.overlay;
    // Relative lower paths (from cwd) keep the mount options under the kernel's one-page limit for longer stacks.
    const options = `lowerdir=${o.lowers.join(':')},upperdir=${o.upper},workdir=${o.work}`;
    if (options.length > 4000) throw new Error(`the image has too many layers (${o.lowers.length}) for one overlay mount`);
    lines.push(`cd ${shq(o.cwd)} && ${t.mount} -t overlay overlay -o ${shq(options)} "$R" || fail "mounting the image's layers with overlayfs failed"`, 'cd /');
  } else {
    // The merged copy is a plain directory; it becomes a mount so it can be moved onto / below.
    lines.push(`${t.mount} --bind "$R" "$R" || fail "bind-mounting the root filesystem failed"`);
  }
  lines.push(
    `echo ${shq(plan.hostname)} > /proc/sys/kernel/hostname || fail "cannot set the hostname"`,
    `inroot /proc dir; ${t.mount} -t proc -o nosuid,nodev,noexec proc "$P" || fail "mounting /proc failed"`,
    `inroot /dev dir; D="$P"; ${t.mount} -t tmpfs -o nosuid,strictatime,mode=755,size=65536k tmpfs "$D" || fail "mounting /dev failed"`,
    ...DEVICES.map(([name, major, minor]) => `${t.mknod} -m 666 "$D/${name}" c ${major} ${minor} || fail "creating /dev/${name} failed"`),
    `${t.mkdir} -m 755 "$D/pts" && ${t.mount} -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5,nosuid,noexec devpts "$D/pts" || fail "mounting /dev/pts failed"`,
    `${t.mkdir} -m 1777 "$D/shm" && ${t.mount} -t tmpfs -o nosuid,nodev,noexec,mode=1777,size=65536k shm "$D/shm" || fail "mounting /dev/shm failed"`,
    `${t.ln} -s pts/ptmx "$D/ptmx" && ${t.ln} -s /proc/self/fd "$D/fd" && ${t.ln} -s /proc/self/fd/0 "$D/stdin" && ${t.ln} -s /proc/self/fd/1 "$D/stdout" && ${t.ln} -s /proc/self/fd/2 "$D/stderr" || fail "populating /dev failed"`,
    // On a terminal, its device becomes /dev/console, as in docker, so programs find their tty by name.
    `if [ -t 0 ] && T=$(${t.readlink} /proc/self/fd/0) && [ -c "$T" ]; then : > "$D/console" && ${t.mount} --bind "$T" "$D/console" || fail "mounting /dev/console failed"; fi`,
    // sysfs is a nicety (read-only); some hosts refuse it in a new mount namespace.
    `inroot /sys dir; ${t.mount} -t sysfs -o ro,nosuid,nodev,noexec sysfs "$P" 2>/dev/null || true`,
  );
  const ip = findHostTool('ip');
  if (plan.net === 'none' && ip) lines.push(`${shq(ip)} link set lo up 2>/dev/null || true`);
  for (const v of plan.volumes) {
    const bind = [
      `${t.mount} --bind ${shq(v.host)} "$P" || fail ${shq(`mounting ${v.host} at ${v.container} failed`)}`,
      ...(v.readonly ? [`${t.mount} -o remount,bind,ro "$P" || fail ${shq(`making ${v.container} read-only failed`)}`] : []),
    ].join('; ');
    const target = `${shq(v.container)} ${v.directory ? 'dir' : 'file'}`;
    lines.push(v.optional ? `if inroot ${target} optional; then ${bind}; fi` : `inroot ${target}; ${bind}`);
  }
  // A missing working directory is created (as docker does); an existing one, even a symlink, is left to nsenter to resolve inside the root.
  lines.push(`[ -e "$R"${shq(plan.workdir)} ] || [ -L "$R"${shq(plan.workdir)} ] || inroot ${shq(plan.workdir)} dir`);
  // The root, with everything mounted in it, is moved onto / of this mount namespace, over
  // the host's root. This shell still resolves host paths (its root is the host's), so the
  // exec chain below is found; nsenter then chroots into "." (the moved mount). From inside,
  // ".." at the top lands on the covered host root and follows the mount back up: unlike a
  // plain chroot, a root process cannot climb out with a second chroot.
  lines.push(`cd "$R" && ${t.mount} --move . / || fail "moving the root filesystem onto / failed"`);
  lines.push(`exec ${t.env} -i "$@"`);
  return lines.join('\n') + '\n';
}
