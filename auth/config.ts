// The `auth` section of the server's settings, as it comes from command-line flags, the
// config file or the environment, checked and completed with defaults at start-up so a
// mistake stops the server instead of silently opening or closing the registry.

import { createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createLocalJWKSet, createRemoteJWKSet } from 'jose';
import { parseRules, type AccessPolicy } from './rules.js';
import { DEFAULT_THROTTLE, type ThrottleOptions } from './throttle.js';
import type { ExternalIssuer } from './tokens.js';

export const AUTH_MODES = ['none', 'token', 'basic'] as const;
export type AuthMode = (typeof AUTH_MODES)[number];

export interface ExternalIssuerConfig {
  /** The `iss` its tokens carry. */
  issuer: string;
  /** Path of its PEM public key or certificate. */
  publicKey?: string;
  /** Path of its JWKS file, or an http(s) URL to fetch it from. */
  jwks?: string;
}

export interface AuthConfig {
  mode: AuthMode;
  anonymousPull?: boolean;
  /** The `service` of challenges and the audience of tokens. */
  service?: string;
  /** The `iss` of the tokens Berth issues. */
  issuer?: string;
  /** Token endpoint URL for challenges; by default `<this server>/auth/token`. Set it behind a proxy or for an external issuer. */
  realm?: string;
  tokenTtlSeconds?: number;
  refreshTtlSeconds?: number;
  /** Access rules per repository pattern, see auth/rules.ts. */
  rules?: unknown;
  externalIssuers?: ExternalIssuerConfig[];
  loginThrottle?: Partial<ThrottleOptions>;
}

export interface ResolvedAuthConfig {
  mode: AuthMode;
  service: string;
  issuer: string;
  realm?: string;
  tokenTtlSeconds: number;
  refreshTtlSeconds: number;
  policy: AccessPolicy;
  externalIssuers: ExternalIssuer[];
  loginThrottle: ThrottleOptions;
}

export const DEFAULT_SERVICE = 'berth-registry';
export const DEFAULT_ISSUER = 'berth-token-service';

function positiveInteger(value: unknown, fallback: number, min: number, name: string): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    throw new Error(`auth ${name}: expected an integer of at least ${min}`);
  }
  return value;
}

export function resolveAuthConfig(config: AuthConfig): ResolvedAuthConfig {
  if (!(AUTH_MODES as readonly string[]).includes(config.mode)) {
    throw new Error(`auth mode "${config.mode}": expected one of ${AUTH_MODES.join(', ')}`);
  }
  const issuer = config.issuer ?? DEFAULT_ISSUER;
  const externalIssuers = (config.externalIssuers ?? []).map(loadExternalIssuer);
  if (externalIssuers.some((e) => e.issuer === issuer)) {
    throw new Error(`auth: external issuer "${issuer}" has the name of Berth's own issuer`);
  }
  return {
    mode: config.mode,
    service: config.service ?? DEFAULT_SERVICE,
    issuer,
    realm: config.realm,
    // Clients renew tokens that live less than a minute too often, and the token spec asks for 60 s or more.
    tokenTtlSeconds: positiveInteger(config.tokenTtlSeconds, 300, 60, 'tokenTtlSeconds'),
    refreshTtlSeconds: positiveInteger(config.refreshTtlSeconds, 30 * 24 * 3600, 60, 'refreshTtlSeconds'),
    policy: { anonymousPull: config.anonymousPull === true, rules: parseRules(config.rules) },
    externalIssuers,
    loginThrottle: {
      maxFailures: positiveInteger(config.loginThrottle?.maxFailures, DEFAULT_THROTTLE.maxFailures, 1, 'loginThrottle.maxFailures'),
      windowSeconds: positiveInteger(
        config.loginThrottle?.windowSeconds,
        DEFAULT_THROTTLE.windowSeconds,
        1,
        'loginThrottle.windowSeconds',
      ),
    },
  };
}

function loadExternalIssuer(config: ExternalIssuerConfig): ExternalIssuer {
  if (!config.issuer) throw new Error('auth external issuer: needs its issuer name');
  if (!!config.publicKey === !!config.jwks) {
    throw new Error(`auth external issuer "${config.issuer}": give either publicKey or jwks`);
  }
  if (config.publicKey) return { issuer: config.issuer, key: createPublicKey(readFileSync(config.publicKey)) };
  const jwks = config.jwks!;
  if (/^https?:\/\//.test(jwks)) return { issuer: config.issuer, key: createRemoteJWKSet(new URL(jwks)) };
  return { issuer: config.issuer, key: createLocalJWKSet(JSON.parse(readFileSync(jwks, 'utf8'))) };
}

