// Small validators for the configuration: each one checks a raw value (from YAML, an
// environment variable or a flag) at a dotted key and returns it typed, or throws a
// ConfigError that names the key, so a mistake stops the start with a clear message.
//
// Environment variables and flags are strings: the boolean, number, size and duration
// validators accept their string forms too.

import { parseDuration } from '../registry/duration.js';

export class ConfigError extends Error {
  constructor(
    readonly key: string,
    readonly problem: string,
    readonly source?: string,
  ) {
    super(`config key "${key}"${source ? ` (from ${source})` : ''}: ${problem}`);
    this.name = 'ConfigError';
  }
}

/** Checks the value at `key`; `sourceOf` names where a key's value came from, for messages. */
export type Validator<T> = (value: unknown, key: string, sourceOf: (key: string) => string | undefined) => T;

function fail(key: string, sourceOf: (key: string) => string | undefined, problem: string): never {
  throw new ConfigError(key, problem, sourceOf(key));
}

const show = (value: unknown) => JSON.stringify(value) ?? String(value);

export function string(check?: (s: string) => string | undefined): Validator<string> {
  return (value, key, sourceOf) => {
    if (typeof value !== 'string' || value === '') fail(key, sourceOf, `expected a non-empty string, got ${show(value)}`);
    const problem = check?.(value);
    if (problem) fail(key, sourceOf, problem);
    return value;
  };
}

export function oneOf<const T extends string>(choices: readonly T[]): Validator<T> {
  return (value, key, sourceOf) => {
    if (typeof value !== 'string' || !(choices as readonly string[]).includes(value)) {
      fail(key, sourceOf, `expected one of ${choices.join(', ')}, got ${show(value)}`);
    }
    return value as T;
  };
}

export const boolean: Validator<boolean> = (value, key, sourceOf) => {
  if (typeof value === 'boolean') return value;
  if (typeof value === 'string' && /^(true|1|yes|on)$/i.test(value)) return true;
  if (typeof value === 'string' && /^(false|0|no|off)$/i.test(value)) return false;
  return fail(key, sourceOf, `expected true or false, got ${show(value)}`);
};

export function integer(min: number): Validator<number> {
  return (value, key, sourceOf) => {
    const n = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < min) fail(key, sourceOf, `expected an integer of at least ${min}, got ${show(value)}`);
    return n;
  };
}

const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1e3, kb: 1e3, kib: 1024, m: 1e6, mb: 1e6, mib: 1024 ** 2, g: 1e9, gb: 1e9, gib: 1024 ** 3, t: 1e12, tb: 1e12, tib: 1024 ** 4 };

/** A byte count: a number, or a string such as `512MiB` or `2GB`. */
export const bytes: Validator<number> = (value, key, sourceOf) => {
  if (typeof value === 'number' && Number.isInteger(value) && value >= 0) return value;
  const m = typeof value === 'string' ? /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(value) : null;
  const unit = m && SIZE_UNITS[m[2]!.toLowerCase()];
  if (!m || unit === undefined || unit === null) return fail(key, sourceOf, `expected a size such as 1073741824, 512MiB or 2GB, got ${show(value)}`);
  return Math.round(Number(m[1]) * unit);
};

/** A duration in milliseconds: a number (ms), or a string such as `500ms`, `5s`, `2m`, `7d`. */
export const duration: Validator<number> = (value, key, sourceOf) => {
  if (typeof value === 'number' && Number.isFinite(value) && value >= 0) return value;
  if (typeof value === 'string' && /^\s*\d+\s*$/.test(value)) return Number(value);
  try {
    if (typeof value === 'string') return parseDuration(value);
  } catch {
    // reported below
  }
  return fail(key, sourceOf, `expected a duration such as 500ms, 5s, 2m or 7d, got ${show(value)}`);
};

export function list<T>(item: Validator<T>): Validator<T[]> {
  return (value, key, sourceOf) => {
    // A comma-separated string, as an environment variable or flag gives it.
    const items = typeof value === 'string' ? value.split(',').map((s) => s.trim()).filter(Boolean) : value;
    if (!Array.isArray(items)) fail(key, sourceOf, `expected a list, got ${show(value)}`);
    return items.map((v, i) => item(v, `${key}[${i}]`, sourceOf));
  };
}

/** A mapping of string to string (HTTP headers, for instance). */
export const stringMap: Validator<Record<string, string>> = (value, key, sourceOf) => {
  if (!isMapping(value)) fail(key, sourceOf, `expected a mapping, got ${show(value)}`);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== 'string' && typeof v !== 'number') fail(`${key}.${k}`, sourceOf, `expected a string, got ${show(v)}`);
    out[k] = String(v);
  }
  return out;
};

/** Any mapping, checked elsewhere (the auth section's rules, for instance). */
export const anything: Validator<unknown> = (value) => value;

export function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

type Shape = Record<string, Validator<unknown>>;
type Typed<S extends Shape> = { [K in keyof S]: ReturnType<S[K]> };

/**
 * A mapping with known keys: an unknown key is an error (a typo must not be silently
 * ignored), and a missing key is left out, so defaults fill it in later.
 */
export function section<S extends Shape>(shape: S): Validator<Partial<Typed<S>>> {
  return (value, key, sourceOf) => {
    if (!isMapping(value)) fail(key || '(top level)', sourceOf, `expected a mapping, got ${show(value)}`);
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      const at = key ? `${key}.${k}` : k;
      const validate = shape[k];
      if (!validate) fail(at, sourceOf, `unknown key${suggestion(k, Object.keys(shape))}; known keys here: ${Object.keys(shape).join(', ')}`);
      if (v === null || v === undefined) continue;
      out[k] = validate(v, at, sourceOf);
    }
    return out as Partial<Typed<S>>;
  };
}

/** A mapping whose keys must all be given (an entry of a list, such as a webhook endpoint). */
export function record<S extends Shape>(shape: S, required: (keyof S & string)[]): Validator<Partial<Typed<S>>> {
  const check = section(shape);
  return (value, key, sourceOf) => {
    const out = check(value, key, sourceOf);
    for (const k of required) if (out[k] === undefined) fail(`${key}.${k}`, sourceOf, 'is required');
    return out;
  };
}

function suggestion(key: string, known: string[]): string {
  const close = known.find((k) => k.toLowerCase() === key.toLowerCase() || editDistance(k.toLowerCase(), key.toLowerCase()) <= 2);
  return close ? ` (did you mean "${close}"?)` : '';
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = row;
  }
  return prev[b.length]!;
}
