// The server's configuration: one YAML file, environment variables and command-line
// flags, with one precedence, highest first:
//
//   flags  >  environment (BERTH_*)  >  config file (--config / BERTH_CONFIG)  >  defaults
//
// Layers are merged key by key (a flag replaces only its own key), then the result is
// validated once; an error names the key and the layer it came from. The auth section
// may also come from its own file (--auth-config / BERTH_AUTH_CONFIG), which sits
// between the config file and the environment. See deploy/berth.yaml for every key.

import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import type { AuthConfig } from '../../auth/config.js';
import { resolveAuthConfig } from '../../auth/config.js';
import { DEFAULT_GRACE_MS, DEFAULT_UPLOAD_TTL_MS } from '../registry/gc.js';
import { proxyList, type UpstreamConfig } from '../proxy/config.js';
import { parseRetentionRules, type RetentionRule } from '../registry/retention.js';
import { trustedProxyList } from '../server/client-address.js';
import { DEFAULT_CONNECTION_LIMITS, type ConnectionLimits } from '../server/connections.js';
import {
  ConfigError,
  anything,
  boolean,
  bytes,
  duration,
  integer,
  isMapping,
  list,
  oneOf,
  record,
  section,
  string,
  stringMap,
} from './validate.js';

export { ConfigError };

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export const LOG_FORMATS = ['auto', 'json', 'pretty'] as const;
export const EVENT_ACTIONS = ['push', 'pull', 'delete', 'mount'] as const;
export type EventAction = (typeof EVENT_ACTIONS)[number];

export interface EventEndpointConfig {
  /** Names the endpoint in logs and metrics, and keys its queue: keep it stable. */
  name: string;
  url: string;
  /** Sent with every delivery (Authorization, for instance); hidden by --print-config. */
  headers: Record<string, string>;
  /** Milliseconds to wait for an answer (a duration: 5s, 500ms). */
  timeout: number;
  /** Which actions to send; all by default. */
  actions: EventAction[];
  /** Events whose target has one of these media types are not sent. */
  ignoreMediaTypes: string[];
}

export interface EventsConfig {
  endpoints: EventEndpointConfig[];
  /** First wait (ms) after a failed delivery; doubled after each failure up to maxBackoff. */
  backoff: number;
  maxBackoff: number;
  /** Failed deliveries of an event before it is dropped (and logged); 0 = never drop. */
  maxAttempts: number;
  /** Events sent in one envelope at most. */
  batchSize: number;
}

/** Blobs in an S3-compatible object store instead of under `data` (storage/s3). */
export interface S3Config {
  /** Any S3-compatible endpoint; AWS's own when omitted. */
  endpoint?: string;
  region: string;
  bucket: string;
  /** Prepended to every key; empty by default. */
  prefix?: string;
  /** Static credentials; without them the AWS SDK's chain (AWS_* variables, profiles, roles). */
  accessKey?: string;
  secretKey?: string;
  forcePathStyle: boolean;
  /** Blob GETs answer 307 to a pre-signed URL of the store. */
  redirect: boolean;
}

export interface BerthConfig {
  listen: string;
  data: string;
  /** Metadata in PostgreSQL (storage/postgres) instead of SQLite under `data`: replicas share it. */
  database?: { url: string };
  storage: { s3?: S3Config };
  /** Maintenance: writes are refused with 405 UNSUPPORTED, reads go on. */
  readOnly: boolean;
  /** Processes serving the same port and data directory (`--workers`); default: the number of cores. */
  workers?: number;
  log: { level: (typeof LOG_LEVELS)[number]; format: (typeof LOG_FORMATS)[number] };
  /** HTTPS when both are set; SIGHUP reloads them. */
  tls?: { cert: string; key: string };
  /** Prometheus metrics at `path`, on the main address or on `listen` when set. */
  metrics: { enabled: boolean; path: string; listen?: string };
  /** /readyz fails when the data directory's file system has less free space than this. */
  health: { minFreeBytes: number };
  auth: AuthConfig;
  events: EventsConfig;
  /** The web UI at `/` (src/ui). */
  ui: boolean;
  /** Scheduled retention and garbage collection; off unless `interval` is set. */
  gc: { interval?: number; grace: number; deleteUntagged: boolean; uploadTtl: number; retention: RetentionRule[] };
  /** Pull-through cache: upstream registries served under repository prefixes (src/proxy). */
  proxy: UpstreamConfig[];
  /** The URL clients reach the registry at; the token realm is built from it. Default: from each request. */
  publicUrl?: string;
  /** Reverse proxies (addresses or CIDR ranges) whose X-Forwarded-* and Forwarded headers are believed. */
  trustedProxies: string[];
  /** Open connections per client address, and the request body timeout (src/server/connections.ts). */
  connections: ConnectionLimits;
}

export const DEFAULTS: BerthConfig = {
  listen: '0.0.0.0:5000',
  data: 'data',
  storage: {},
  readOnly: false,
  log: { level: 'info', format: 'auto' },
  metrics: { enabled: true, path: '/metrics' },
  health: { minFreeBytes: 256 * 1024 ** 2 },
  auth: { mode: 'none' },
  ui: true,
  events: { endpoints: [], backoff: 1000, maxBackoff: 5 * 60_000, maxAttempts: 0, batchSize: 50 },
  gc: { grace: DEFAULT_GRACE_MS, deleteUntagged: false, uploadTtl: DEFAULT_UPLOAD_TTL_MS, retention: [] },
  proxy: [],
  trustedProxies: [],
  connections: DEFAULT_CONNECTION_LIMITS,
};

const listenAddress = string((s) => (/^(\[[^\]]+\]|[^:[\]]*):\d{1,5}$/.test(s) ? undefined : `expected host:port, got ${JSON.stringify(s)}`));
const httpUrl = string((s) => (/^https?:\/\/[^/]/.test(s) ? undefined : `expected an http(s) URL, got ${JSON.stringify(s)}`));
const postgresUrl = string((s) => (/^postgres(ql)?:\/\/./.test(s) ? undefined : `expected a postgres:// URL, got ${JSON.stringify(s.replace(/:[^:@/]*@/, ':***@'))}`));
const urlPath = string((s) => (s.startsWith('/') ? undefined : `expected a path starting with /, got ${JSON.stringify(s)}`));

/** Every key the configuration knows, with its check. Add a section here to add settings. */
const SCHEMA = section({
  listen: listenAddress,
  data: string(),
  database: section({ url: postgresUrl }),
  storage: section({
    s3: section({
      endpoint: httpUrl,
      region: string(),
      bucket: string(),
      prefix: string(),
      accessKey: string(),
      secretKey: string(),
      forcePathStyle: boolean,
      redirect: boolean,
    }),
  }),
  readOnly: boolean,
  ui: boolean,
  workers: integer(1),
  log: section({ level: oneOf(LOG_LEVELS), format: oneOf(LOG_FORMATS) }),
  tls: section({ cert: string(), key: string() }),
  metrics: section({ enabled: boolean, path: urlPath, listen: listenAddress }),
  health: section({ minFreeBytes: bytes }),
  // The fields of AuthConfig (auth/config.ts); resolveAuthConfig checks their values.
  auth: section({
    mode: string(),
    anonymousPull: boolean,
    service: string(),
    issuer: string(),
    realm: httpUrl,
    tokenTtlSeconds: integer(60),
    refreshTtlSeconds: integer(60),
    rules: anything,
    externalIssuers: list(record({ issuer: string(), publicKey: string(), jwks: string() }, ['issuer'])),
    loginThrottle: section({ maxFailures: integer(1), windowSeconds: integer(1) }),
  }),
  events: section({
    endpoints: list(
      record(
        {
          name: string(),
          url: httpUrl,
          headers: stringMap,
          timeout: duration,
          actions: list(oneOf(EVENT_ACTIONS)),
          ignoreMediaTypes: list(string()),
        },
        ['name', 'url'],
      ),
    ),
    backoff: duration,
    maxBackoff: duration,
    maxAttempts: integer(0),
    batchSize: integer(1),
  }),
  // parseRetentionRules (src/registry/retention.ts) checks the rules.
  gc: section({ interval: duration, grace: duration, deleteUntagged: boolean, uploadTtl: duration, retention: anything }),
  // src/proxy/config.ts checks the entries.
  proxy: proxyList,
  publicUrl: httpUrl,
  trustedProxies: list(
    string((s) => {
      try {
        trustedProxyList([s]);
        return undefined;
      } catch (err) {
        return (err as Error).message;
      }
    }),
  ),
  connections: section({ maxPerAddress: integer(0), bodyTimeout: duration }),
});

/** Environment variables and the keys they set. BERTH_CONFIG names the file. */
export const ENV_KEYS: Record<string, string> = {
  BERTH_LISTEN: 'listen',
  BERTH_DATA: 'data',
  BERTH_READ_ONLY: 'readOnly',
  BERTH_UI: 'ui',
  BERTH_WORKERS: 'workers',
  BERTH_LOG_LEVEL: 'log.level',
  BERTH_LOG_FORMAT: 'log.format',
  BERTH_TLS_CERT: 'tls.cert',
  BERTH_TLS_KEY: 'tls.key',
  BERTH_METRICS: 'metrics.enabled',
  BERTH_METRICS_PATH: 'metrics.path',
  BERTH_METRICS_LISTEN: 'metrics.listen',
  BERTH_MIN_FREE_DISK: 'health.minFreeBytes',
  BERTH_AUTH: 'auth.mode',
  BERTH_ANONYMOUS_PULL: 'auth.anonymousPull',
  BERTH_GC_INTERVAL: 'gc.interval',
  BERTH_GC_GRACE: 'gc.grace',
  BERTH_PUBLIC_URL: 'publicUrl',
  BERTH_DATABASE_URL: 'database.url',
  BERTH_S3_ENDPOINT: 'storage.s3.endpoint',
  BERTH_S3_REGION: 'storage.s3.region',
  BERTH_S3_BUCKET: 'storage.s3.bucket',
  BERTH_S3_PREFIX: 'storage.s3.prefix',
  BERTH_S3_ACCESS_KEY: 'storage.s3.accessKey',
  BERTH_S3_SECRET_KEY: 'storage.s3.secretKey',
  BERTH_S3_FORCE_PATH_STYLE: 'storage.s3.forcePathStyle',
  BERTH_S3_REDIRECT: 'storage.s3.redirect',
};

/** The `berth serve` options (commander's camelCase names) and the keys they set. */
export const FLAG_KEYS: Record<string, string> = {
  listen: 'listen',
  data: 'data',
  readOnly: 'readOnly',
  ui: 'ui',
  workers: 'workers',
  logLevel: 'log.level',
  logFormat: 'log.format',
  tlsCert: 'tls.cert',
  tlsKey: 'tls.key',
  metricsPath: 'metrics.path',
  metricsListen: 'metrics.listen',
  minFreeDisk: 'health.minFreeBytes',
  auth: 'auth.mode',
  anonymousPull: 'auth.anonymousPull',
  tokenService: 'auth.service',
  tokenIssuer: 'auth.issuer',
  tokenRealm: 'auth.realm',
  tokenTtl: 'auth.tokenTtlSeconds',
  gcInterval: 'gc.interval',
  gcGrace: 'gc.grace',
  grace: 'gc.grace',
  gcDeleteUntagged: 'gc.deleteUntagged',
  publicUrl: 'publicUrl',
};

export interface ConfigSources {
  /** commander's options of `berth serve`; undefined means not given. */
  flags?: Record<string, unknown>;
  env?: NodeJS.ProcessEnv;
}

interface Layer {
  name: string;
  values: Record<string, unknown>;
}

/** Loads, merges and validates the configuration. Throws ConfigError naming the bad key. */
export function loadConfig({ flags = {}, env = process.env }: ConfigSources = {}): BerthConfig {
  const layers: Layer[] = [];
  const file = (flags.config as string | undefined) ?? env.BERTH_CONFIG;
  if (file) layers.push({ name: file, values: readYamlMapping(file, '') });
  const authFile = (flags.authConfig as string | undefined) ?? env.BERTH_AUTH_CONFIG;
  if (authFile) layers.push({ name: authFile, values: { auth: readYamlMapping(authFile, 'auth') } });
  layers.push({ name: 'environment', values: fromTable(ENV_KEYS, env, (name) => name) });
  const flagValues = fromTable(FLAG_KEYS, flags, (name) => `--${name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`);
  const issuerFlags = externalIssuerFlag(flags);
  if (issuerFlags) setKey(flagValues, 'auth.externalIssuers', appendIssuer(layers, issuerFlags));
  layers.push({ name: 'flags', values: flagValues });
  return resolve(layers);
}

/** Validates already-parsed layers (lowest first) over the defaults. */
function resolve(layers: Layer[]): BerthConfig {
  const merged: Record<string, unknown> = {};
  const sources = new Map<string, string>();
  for (const layer of layers) mergeInto(merged, layer.values, '', layer.name, sources);
  // The most specific key with a recorded source names where a bad value came from.
  const sourceOf = (key: string) => {
    for (let k = key; k; k = parentKey(k)) {
      const s = sources.get(k);
      if (s) return s;
    }
    return undefined;
  };
  const raw = SCHEMA(merged, '', sourceOf);
  const config: BerthConfig = {
    listen: raw.listen ?? DEFAULTS.listen,
    data: raw.data ?? DEFAULTS.data,
    readOnly: raw.readOnly ?? DEFAULTS.readOnly,
    ...(raw.workers !== undefined ? { workers: raw.workers } : {}),
    ...(raw.database?.url ? { database: { url: raw.database.url } } : {}),
    storage: { ...(raw.storage?.s3 ? { s3: s3Config(raw.storage.s3, sourceOf) } : {}) },
    ui: raw.ui ?? DEFAULTS.ui,
    log: { ...DEFAULTS.log, ...raw.log },
    metrics: { ...DEFAULTS.metrics, ...raw.metrics },
    health: { ...DEFAULTS.health, ...raw.health },
    auth: { ...DEFAULTS.auth, ...(raw.auth as Partial<AuthConfig>) },
    gc: DEFAULTS.gc,
    proxy: raw.proxy ?? DEFAULTS.proxy,
    publicUrl: raw.publicUrl,
    trustedProxies: raw.trustedProxies ?? DEFAULTS.trustedProxies,
    connections: { ...DEFAULTS.connections, ...raw.connections },
    events: {
      endpoints: (raw.events?.endpoints ?? []).map((e) => ({
        name: e.name!,
        url: e.url!,
        headers: e.headers ?? {},
        timeout: e.timeout ?? 5000,
        actions: e.actions ?? [...EVENT_ACTIONS],
        ignoreMediaTypes: e.ignoreMediaTypes ?? [],
      })),
      backoff: raw.events?.backoff ?? DEFAULTS.events.backoff,
      maxBackoff: raw.events?.maxBackoff ?? DEFAULTS.events.maxBackoff,
      maxAttempts: raw.events?.maxAttempts ?? DEFAULTS.events.maxAttempts,
      batchSize: raw.events?.batchSize ?? DEFAULTS.events.batchSize,
    },
  };
  try {
    config.gc = {
      ...DEFAULTS.gc,
      ...(raw.gc as Partial<BerthConfig['gc']>),
      retention: parseRetentionRules(raw.gc?.retention),
    };
  } catch (err) {
    throw new ConfigError('gc.retention', (err as Error).message.replace(/^retention/, ''), sourceOf('gc.retention'));
  }
  if (raw.tls) {
    if (!raw.tls.cert || !raw.tls.key) {
      const missing = raw.tls.cert ? 'tls.key' : 'tls.cert';
      throw new ConfigError(missing, 'is required when the other of tls.cert and tls.key is set', sourceOf('tls'));
    }
    config.tls = { cert: raw.tls.cert, key: raw.tls.key };
  }
  const names = new Set<string>();
  config.events.endpoints.forEach((e, i) => {
    if (names.has(e.name)) throw new ConfigError(`events.endpoints[${i}].name`, `"${e.name}" is used by two endpoints`, sourceOf('events'));
    names.add(e.name);
  });
  try {
    resolveAuthConfig(config.auth);
  } catch (err) {
    // auth/config.ts says which auth field is wrong; prefix the section.
    throw new ConfigError('auth', (err as Error).message.replace(/^auth:?\s*/, ''), sourceOf('auth'));
  }
  return config;
}

/** storage.s3 with its defaults; a bucket is required, and the keys go in pairs. */
function s3Config(raw: Partial<Omit<S3Config, 'forcePathStyle' | 'redirect'> & { forcePathStyle: boolean; redirect: boolean }>, sourceOf: (key: string) => string | undefined): S3Config {
  if (!raw.bucket) throw new ConfigError('storage.s3.bucket', 'is required when storage.s3 is set', sourceOf('storage.s3'));
  if (!raw.accessKey !== !raw.secretKey) {
    const missing = raw.accessKey ? 'storage.s3.secretKey' : 'storage.s3.accessKey';
    throw new ConfigError(missing, 'is required when the other of storage.s3.accessKey and storage.s3.secretKey is set', sourceOf('storage.s3'));
  }
  return {
    endpoint: raw.endpoint,
    region: raw.region ?? 'us-east-1',
    bucket: raw.bucket,
    prefix: raw.prefix,
    accessKey: raw.accessKey,
    secretKey: raw.secretKey,
    forcePathStyle: raw.forcePathStyle ?? false,
    redirect: raw.redirect ?? false,
  };
}

/** `a.b[2].c` -> `a.b[2]` -> `a.b` -> `a` -> `` */
function parentKey(key: string): string {
  const parent = key.replace(/(\[\d+\]|\.[^.[\]]+)$/, '');
  return parent === key ? '' : parent;
}

function readYamlMapping(path: string, key: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new Error(`cannot read config file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = parseYaml(text);
  } catch (err) {
    throw new Error(`${path}: invalid YAML: ${(err as Error).message}`);
  }
  if (parsed === null || parsed === undefined) return {};
  if (!isMapping(parsed)) throw new ConfigError(key || '(top level)', 'expected a mapping of keys', path);
  return parsed;
}

function fromTable(table: Record<string, string>, given: Record<string, unknown>, label: (name: string) => string): Record<string, unknown> & { [SOURCES]?: Map<string, string> } {
  const out: Record<string, unknown> & { [SOURCES]?: Map<string, string> } = {};
  const labels = new Map<string, string>();
  for (const [name, key] of Object.entries(table)) {
    const value = given[name];
    if (value === undefined || value === '') continue;
    setKey(out, key, value);
    labels.set(key, label(name));
  }
  out[SOURCES] = labels;
  return out;
}

/** Per-key source labels of a layer (BERTH_LISTEN, --listen), finer than the layer's name. */
const SOURCES = Symbol('sources');

function setKey(target: Record<string, unknown>, dotted: string, value: unknown): void {
  const parts = dotted.split('.');
  let at = target;
  for (const p of parts.slice(0, -1)) at = (at[p] ??= {}) as Record<string, unknown>;
  at[parts.at(-1)!] = value;
}

function mergeInto(target: Record<string, unknown>, values: Record<string, unknown> & { [SOURCES]?: Map<string, string> }, prefix: string, layer: string, sources: Map<string, string>): void {
  const labels = values[SOURCES];
  for (const [k, v] of Object.entries(values)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (isMapping(v) && isMapping(target[k])) {
      mergeInto(target[k] as Record<string, unknown>, v, key, layer, sources);
    } else {
      target[k] = isMapping(v) ? structuredClone(v) : v;
    }
    if (!isMapping(v) || !sources.has(key)) sources.set(key, layer);
  }
  if (labels) for (const [key, label] of labels) sources.set(key, label);
}

function externalIssuerFlag(flags: Record<string, unknown>): Record<string, unknown> | undefined {
  const { externalIssuer, externalKey, externalJwks } = flags;
  if (!externalIssuer && !externalKey && !externalJwks) return undefined;
  return { issuer: externalIssuer, publicKey: externalKey, jwks: externalJwks };
}

/** `--external-issuer` adds an issuer to those of the files rather than replacing them. */
function appendIssuer(layers: Layer[], issuer: Record<string, unknown>): unknown[] {
  const fromFiles = layers.flatMap((l) => {
    const auth = l.values.auth;
    return isMapping(auth) && Array.isArray(auth.externalIssuers) ? auth.externalIssuers : [];
  });
  return [...fromFiles, Object.fromEntries(Object.entries(issuer).filter(([, v]) => v !== undefined))];
}
