// The `proxy:` list of the configuration: one entry per upstream registry whose images
// Berth caches under a repository prefix (`docker.io/library/busybox` ->
// registry-1.docker.io's `library/busybox`). Secrets may come from a file or an
// environment variable so they need not sit in the YAML; --print-config hides them.

import { readFileSync } from 'node:fs';
import { ConfigError, bytes, duration, list, record, string, type Validator } from '../config/validate.js';
import { isValidName } from '../registry/names.js';

export interface UpstreamConfig {
  /** Repository prefix served from this upstream: `docker.io`, `ghcr.io`, `mirrors/quay`. */
  prefix: string;
  /** The upstream's base URL (https://registry-1.docker.io). */
  url: string;
  username?: string;
  password?: string;
  /** Read the password from this file (trailing newline dropped), instead of `password`. */
  passwordFile?: string;
  /** Read the password from this environment variable, instead of `password`. */
  passwordEnv?: string;
  /** Re-check a tag upstream after this long (ms). */
  tagTtl: number;
  /** Evict least recently pulled images when the cache holds more than this (bytes). */
  maxBytes?: number;
  /** Evict images not pulled for this long (ms). */
  idleFor?: number;
  /** PEM file of CA certificates trusted for this upstream, besides the system's. */
  caFile?: string;
}

/** The reference registry's proxy default: tags are re-checked after a day there; an hour here. */
export const DEFAULT_TAG_TTL_MS = 60 * 60_000;

const upstreamUrl = string((s) => {
  try {
    const u = new URL(s);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return `expected an http(s) URL, got ${JSON.stringify(s)}`;
    if (u.username || u.password) return 'put credentials in username and password (or passwordFile/passwordEnv), not in the URL';
    return undefined;
  } catch {
    return `expected an http(s) URL, got ${JSON.stringify(s)}`;
  }
});

const prefix = string((s) => (isValidName(s) ? undefined : `expected a repository name prefix such as docker.io or ghcr.io, got ${JSON.stringify(s)}`));

const entry = record(
  {
    prefix,
    url: upstreamUrl,
    username: string(),
    password: string(),
    passwordFile: string(),
    passwordEnv: string(),
    tagTtl: duration,
    maxBytes: bytes,
    idleFor: duration,
    caFile: string(),
  },
  ['prefix', 'url'],
);

/** Validates the `proxy:` list (config.ts runs it); secrets are read later, by `upstreamCredentials`. */
export const proxyList: Validator<UpstreamConfig[]> = (value, key, sourceOf) => {
  const entries = list(entry)(value, key, sourceOf).map((e) => ({ ...e, tagTtl: e.tagTtl ?? DEFAULT_TAG_TTL_MS }) as UpstreamConfig);
  entries.forEach((e, i) => {
    const at = `${key}[${i}]`;
    const sources = [e.password !== undefined, e.passwordFile !== undefined, e.passwordEnv !== undefined].filter(Boolean).length;
    if (sources > 1) throw new ConfigError(`${at}.password`, 'give one of password, passwordFile and passwordEnv', sourceOf(at));
    if (sources === 1 && e.username === undefined) throw new ConfigError(`${at}.username`, 'is required with a password', sourceOf(at));
    // Prefixes must not nest: a repository must belong to one upstream at most.
    entries.forEach((o, j) => {
      if (j !== i && (e.prefix === o.prefix || e.prefix.startsWith(`${o.prefix}/`))) {
        throw new ConfigError(`${at}.prefix`, `"${e.prefix}" overlaps the prefix "${o.prefix}" of ${key}[${j}]`, sourceOf(at));
      }
    });
  });
  return entries;
};

/** The upstream's credentials, reading passwordFile or passwordEnv now; undefined for anonymous pulls. */
export function upstreamCredentials(u: UpstreamConfig, env: NodeJS.ProcessEnv = process.env): { username: string; password: string } | undefined {
  if (u.username === undefined) return undefined;
  let password = u.password;
  if (u.passwordFile !== undefined) {
    try {
      password = readFileSync(u.passwordFile, 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      throw new Error(`proxy upstream ${u.prefix}: cannot read passwordFile ${u.passwordFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  } else if (u.passwordEnv !== undefined) {
    password = env[u.passwordEnv];
    if (password === undefined) throw new Error(`proxy upstream ${u.prefix}: environment variable ${u.passwordEnv} (passwordEnv) is not set`);
  }
  return { username: u.username, password: password ?? '' };
}
