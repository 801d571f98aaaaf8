// What the metadata instructions do to an image config, and the variables of a stage:
// docker's rules, kept apart from the file system so they can be tested alone.
//
// - ENV overrides ARG of the same name; substitution sees both; RUN's environment gets
//   the ARGs (those with a value) that no ENV overrides; ARGs never reach the image.
// - An ARG inside a stage takes its value from --build-arg, else its own default, else
//   the global ARG (before the first FROM) of the same name; otherwise it is unset.
// - Shell forms become [SHELL..., text] (default /bin/sh -c); exec forms stay as written.
// - A later CMD replaces an earlier one; ENTRYPOINT clears a CMD inherited from the base
//   image (not one set earlier in this stage).
// - WORKDIR is relative to the previous one.

import { DockerfileError, type CommandForm, type Instruction } from './dockerfile.js';
import { expandWord, SubstitutionError, type Env } from './shell-words.js';

export const DEFAULT_SHELL = ['/bin/sh', '-c'];

export interface Healthcheck {
  Test: string[];
  Interval?: number;
  Timeout?: number;
  StartPeriod?: number;
  StartInterval?: number;
  Retries?: number;
}

/** The `config` part of an OCI/Docker image config, with docker's extensions. */
export interface ContainerConfig {
  User?: string;
  ExposedPorts?: Record<string, object>;
  Env?: string[];
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  Volumes?: Record<string, object>;
  WorkingDir?: string;
  Labels?: Record<string, string>;
  StopSignal?: string;
  Healthcheck?: Healthcheck;
  OnBuild?: string[] | null;
  Shell?: string[];
}

export interface HistoryEntry {
  created?: string;
  created_by?: string;
  author?: string;
  comment?: string;
  empty_layer?: boolean;
}

export interface ImageConfigFile {
  created?: string;
  author?: string;
  architecture: string;
  os: string;
  variant?: string;
  config: ContainerConfig;
  rootfs: { type: 'layers'; diff_ids: string[] };
  history?: HistoryEntry[];
}

/** The variables and config of the stage being built. */
export class StageState {
  /** ARGs declared in this stage: name -> value (undefined: declared, no value). */
  readonly args = new Map<string, string | undefined>();
  /** Whether this stage set CMD itself (ENTRYPOINT then keeps it). */
  private cmdSet = false;
  author?: string;

  constructor(
    public config: ContainerConfig,
    private readonly buildArgs: ReadonlyMap<string, string>,
    private readonly metaArgs: ReadonlyMap<string, string | undefined>,
    /** Names of --build-args some ARG used (for docker's "not consumed" warning). */
    private readonly consumed: Set<string>,
    readonly escape = '\\',
  ) {}

  /** What substitution sees: the ARGs with a value, then ENV over them. */
  env(): Env {
    const env = new Map<string, string>();
    for (const [k, v] of this.args) if (v !== undefined) env.set(k, v);
    for (const [k, v] of envEntries(this.config.Env)) env.set(k, v);
    return env;
  }

  /** The ARGs with a value that no ENV overrides, as `K=V` (RUN's extra environment). */
  runArgs(): string[] {
    const env = new Set(envEntries(this.config.Env).map(([k]) => k));
    return [...this.args].filter(([k, v]) => v !== undefined && !env.has(k)).map(([k, v]) => `${k}=${v}`);
  }

  expand(word: string, line: number): string {
    try {
      return expandWord(word, this.env(), this.escape);
    } catch (err) {
      if (err instanceof SubstitutionError) throw new DockerfileError(err.message, line);
      throw err;
    }
  }

  shell(): string[] {
    return this.config.Shell && this.config.Shell.length > 0 ? this.config.Shell : DEFAULT_SHELL;
  }

  /** The argv of a RUN/CMD/ENTRYPOINT: exec form as written, shell form through the shell. */
  argv(command: CommandForm): string[] {
    return command.form === 'exec' ? command.argv : [...this.shell(), command.text];
  }

  /**
   * Applies a metadata instruction (anything but FROM, RUN, COPY, ADD) to the config.
   * WORKDIR only changes the config here; the builder creates the directory.
   */
  apply(instr: Instruction): void {
    const c = this.config;
    switch (instr.keyword) {
      case 'ARG':
        for (const { name, value } of instr.args) {
          let v: string | undefined;
          if (this.buildArgs.has(name)) {
            v = this.buildArgs.get(name);
            this.consumed.add(name);
          } else if (value !== undefined) v = this.expand(value, instr.line);
          else v = this.metaArgs.get(name);
          this.args.set(name, v);
        }
        return;
      case 'ENV': {
        // Every pair is expanded with the variables as they were before this instruction.
        const pairs = instr.pairs.map(({ key, value }) => [this.expand(key, instr.line), this.expand(value, instr.line)] as const);
        const env = envEntries(c.Env);
        for (const [k, v] of pairs) {
          const i = env.findIndex(([name]) => name === k);
          if (i >= 0) env[i] = [k, v];
          else env.push([k, v]);
        }
        c.Env = env.map(([k, v]) => `${k}=${v}`);
        return;
      }
      case 'LABEL':
        c.Labels = { ...c.Labels };
        for (const { key, value } of instr.pairs) {
          const k = this.expand(key, instr.line);
          if (k === '') throw new DockerfileError('LABEL names can not be blank', instr.line);
          c.Labels[k] = this.expand(value, instr.line);
        }
        return;
      case 'WORKDIR':
        c.WorkingDir = resolveWorkdir(c.WorkingDir, this.expand(instr.value, instr.line));
        return;
      case 'USER':
        c.User = this.expand(instr.value, instr.line);
        return;
      case 'STOPSIGNAL': {
        const signal = this.expand(instr.value, instr.line);
        if (!/^(SIG)?[A-Z0-9+-]+$/i.test(signal)) throw new DockerfileError(`invalid signal: ${signal}`, instr.line);
        c.StopSignal = signal;
        return;
      }
      case 'MAINTAINER':
        this.author = instr.value;
        return;
      case 'EXPOSE':
        c.ExposedPorts = { ...c.ExposedPorts };
        for (const word of instr.values) for (const port of exposedPorts(this.expand(word, instr.line), instr.line)) c.ExposedPorts[port] = {};
        return;
      case 'VOLUME':
        c.Volumes = { ...c.Volumes };
        for (const word of instr.values) {
          const v = this.expand(word, instr.line).trim();
          if (v === '') throw new DockerfileError('VOLUME specified can not be an empty string', instr.line);
          c.Volumes[v] = {};
        }
        return;
      case 'CMD':
        c.Cmd = this.argv(instr.command);
        this.cmdSet = true;
        return;
      case 'ENTRYPOINT':
        c.Entrypoint = this.argv(instr.command);
        if (!this.cmdSet) c.Cmd = null;
        return;
      case 'SHELL':
        c.Shell = instr.argv;
        return;
      case 'HEALTHCHECK':
        c.Healthcheck = healthcheck(instr);
        return;
      case 'ONBUILD':
        c.OnBuild = [...(c.OnBuild ?? []), instr.expression];
        return;
      default:
        throw new Error(`${instr.keyword} is not a metadata instruction`);
    }
  }
}

export function envEntries(env: string[] | null | undefined): [string, string][] {
  return (env ?? []).map((e) => {
    const eq = e.indexOf('=');
    return eq < 0 ? [e, ''] : [e.slice(0, eq), e.slice(eq + 1)];
  });
}

/** Docker's normalizeWorkdir: a relative WORKDIR goes under the previous one. */
export function resolveWorkdir(current: string | undefined, requested: string): string {
  if (requested === '') throw new DockerfileError('WORKDIR cannot be empty');
  const joined = requested.startsWith('/') ? requested : `/${current ?? ''}/${requested}`;
  return normalizePath(joined);
}

/** path.posix.normalize without a trailing slash, always absolute. */
function normalizePath(p: string): string {
  const out: string[] = [];
  for (const part of p.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') out.pop();
    else out.push(part);
  }
  return `/${out.join('/')}`;
}

/** `80`, `80/udp`, `8000-8002/tcp` -> `80/tcp`... (docker's nat.ParsePortSpecs for EXPOSE). */
export function exposedPorts(spec: string, line: number): string[] {
  const m = /^(\d+)(?:-(\d+))?(?:\/([a-zA-Z]+))?$/.exec(spec);
  const bad = () => new DockerfileError(`invalid port for EXPOSE: ${spec}`, line);
  if (!m) throw bad();
  const proto = (m[3] ?? 'tcp').toLowerCase();
  if (!['tcp', 'udp', 'sctp'].includes(proto)) throw bad();
  const start = Number(m[1]);
  const end = m[2] === undefined ? start : Number(m[2]);
  if (start < 0 || end > 65535 || end < start) throw bad();
  const out: string[] = [];
  for (let p = start; p <= end; p++) out.push(`${p}/${proto}`);
  return out;
}

const UNITS: Record<string, number> = { ns: 1, us: 1e3, µs: 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };

/** A Go duration (`30s`, `1m30s`, `500ms`) in nanoseconds. */
export function parseDuration(value: string): number | undefined {
  if (value === '0') return 0;
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/gy;
  let total = 0;
  let matched = 0;
  for (let m = re.exec(value); m; m = re.exec(value)) {
    total += Number(m[1]) * UNITS[m[2]!]!;
    matched = re.lastIndex;
  }
  return matched === value.length && value.length > 0 ? Math.round(total) : undefined;
}

function healthcheck(instr: Instruction & { keyword: 'HEALTHCHECK' }): Healthcheck {
  if (instr.test === 'NONE') return { Test: ['NONE'] };
  const hc: Healthcheck = {
    Test: instr.test.form === 'exec' ? ['CMD', ...instr.test.argv] : ['CMD-SHELL', instr.test.text],
  };
  const durations = { interval: 'Interval', timeout: 'Timeout', 'start-period': 'StartPeriod', 'start-interval': 'StartInterval' } as const;
  for (const [flag, field] of Object.entries(durations)) {
    const raw = instr.flags[flag];
    if (raw === undefined) continue;
    const ns = parseDuration(raw);
    if (ns === undefined) throw new DockerfileError(`--${flag}: invalid duration ${raw}`, instr.line);
    if (ns !== 0 && ns < 1e6) throw new DockerfileError(`--${flag} cannot be less than 1ms`, instr.line);
    if (ns !== 0) hc[field] = ns;
  }
  if (instr.flags.retries !== undefined) {
    const n = Number(instr.flags.retries);
    if (!Number.isInteger(n) || n < 0) throw new DockerfileError(`--retries: expected a whole number, got ${instr.flags.retries}`, instr.line);
    if (n > 0) hc.Retries = n;
  }
  return hc;
}
