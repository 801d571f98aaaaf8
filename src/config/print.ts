// `berth serve --print-config`: the configuration in effect, as YAML, with secrets
// hidden so the output can be pasted into a bug report.

import { stringify } from 'yaml';
import type { BerthConfig } from './config.js';
import { isMapping } from './validate.js';

export const HIDDEN = '<hidden>';

/** Keys whose values are secrets wherever they appear. */
const SECRET_KEY = /(password|secret|token$|apikey|api_key|credential)/i;

export function redactConfig(config: BerthConfig): unknown {
  return redact(config, '');
}

function redact(value: unknown, key: string): unknown {
  if (Array.isArray(value)) return value.map((v) => redact(v, key));
  if (!isMapping(value)) {
    if (typeof value === 'string' && /^(https?|postgres(ql)?):\/\//.test(value)) return hideUrlPassword(value);
    return value;
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    // Webhook headers carry credentials (Authorization, API keys): hide every value.
    if (key === 'headers' && k) out[k] = HIDDEN;
    else if (SECRET_KEY.test(k) && v !== undefined) out[k] = HIDDEN;
    else out[k] = redact(v, k);
  }
  return out;
}

function hideUrlPassword(url: string): string {
  try {
    const u = new URL(url);
    if (!u.password && !u.search) return url;
    if (u.password) u.password = '***';
    // Query strings of webhook URLs often carry tokens (?token=...).
    for (const name of [...u.searchParams.keys()]) u.searchParams.set(name, '***');
    return u.toString();
  } catch {
    return url;
  }
}

export function printConfig(config: BerthConfig): string {
  return stringify(redactConfig(config));
}
