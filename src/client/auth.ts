// The registry auth handshake (Docker token spec, RFC 6750, RFC 7617): parse the
// `WWW-Authenticate` challenge of a 401, then either send Basic credentials or fetch a
// Bearer token from the challenge's realm for the scopes a request needs. Tokens are
// cached per service and scope set until shortly before they expire.

import type { Credentials } from './credentials.js';

export interface Challenge {
  scheme: 'bearer' | 'basic';
  realm?: string;
  service?: string;
  scope?: string;
  /** `insufficient_scope` when a token was valid but did not cover the request. */
  error?: string;
}

/** Parses the first Bearer or Basic challenge of a WWW-Authenticate header. */
export function parseChallenge(header: string | null): Challenge | undefined {
  if (!header) return undefined;
  const m = /^\s*(Bearer|Basic)\b(.*)$/is.exec(header);
  if (!m) return undefined;
  const challenge: Challenge = { scheme: m[1]!.toLowerCase() as Challenge['scheme'] };
  const params = m[2]!;
  const re = /([A-Za-z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g;
  for (let p = re.exec(params); p; p = re.exec(params)) {
    const key = p[1]!.toLowerCase();
    const value = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : p[3]!;
    if (key === 'realm' || key === 'service' || key === 'scope' || key === 'error') challenge[key] = value;
  }
  return challenge;
}

/** `type:name:actions`; the name may hold colons (a registry host with a port). */
function splitScope(scope: string): { resource: string; actions: string[] } {
  const last = scope.lastIndexOf(':');
  return { resource: scope.slice(0, last), actions: scope.slice(last + 1).split(',') };
}

/** True when `scopes` already grant every action of `scope` (pull,push covers pull). */
export function scopesCover(scopes: string[], scope: string): boolean {
  const want = splitScope(scope);
  const have = new Set(scopes.map(splitScope).filter((s) => s.resource === want.resource).flatMap((s) => s.actions));
  return have.has('*') || want.actions.every((a) => have.has(a));
}

export function basicHeader(creds: Credentials): string {
  return `Basic ${Buffer.from(`${creds.username ?? ''}:${creds.password ?? ''}`).toString('base64')}`;
}

export class TokenError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

interface CachedToken {
  token: string;
  expiresAt: number;
}

/** Refresh a token this long before it expires, so a request never carries a stale one. */
const EXPIRY_MARGIN_MS = 10_000;
/** The token spec's default lifetime when the response names none. */
const DEFAULT_EXPIRES_IN_S = 60;

export class TokenCache {
  private readonly tokens = new Map<string, CachedToken>();

  constructor(private readonly userAgent: string) {}

  private key(challenge: Challenge, scopes: string[]): string {
    return `${challenge.realm}|${challenge.service ?? ''}|${[...new Set(scopes)].sort().join(' ')}`;
  }

  forget(challenge: Challenge, scopes: string[]): void {
    this.tokens.delete(this.key(challenge, scopes));
  }

  /** A token for `scopes`, from the cache while it is fresh, else from the realm. */
  async get(challenge: Challenge, scopes: string[], creds: Credentials | undefined): Promise<string> {
    const key = this.key(challenge, scopes);
    const cached = this.tokens.get(key);
    if (cached && cached.expiresAt - EXPIRY_MARGIN_MS > Date.now()) return cached.token;
    const fresh = await this.fetchToken(challenge, [...new Set(scopes)].sort(), creds);
    this.tokens.set(key, fresh);
    return fresh.token;
  }

  private async fetchToken(challenge: Challenge, scopes: string[], creds: Credentials | undefined): Promise<CachedToken> {
    if (!challenge.realm) throw new TokenError('the registry asked for a Bearer token but named no realm', 401);
    let res: Response;
    if (creds?.identityToken) {
      // docker's identity token is an OAuth2 refresh token: the POST form of the token spec.
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: creds.identityToken, client_id: 'berth' });
      if (challenge.service) form.set('service', challenge.service);
      if (scopes.length) form.set('scope', scopes.join(' '));
      res = await fetch(challenge.realm, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'user-agent': this.userAgent },
        body: form,
      });
    } else {
      const url = new URL(challenge.realm);
      if (challenge.service) url.searchParams.set('service', challenge.service);
      for (const s of scopes) url.searchParams.append('scope', s);
      const headers: Record<string, string> = { 'user-agent': this.userAgent };
      if (creds?.username !== undefined) {
        url.searchParams.set('account', creds.username);
        headers.authorization = basicHeader(creds);
      }
      res = await fetch(url, { headers });
    }
    const text = await res.text();
    if (!res.ok) {
      throw new TokenError(`token request to ${challenge.realm} failed with ${res.status}: ${text.slice(0, 200)}`, res.status);
    }
    const body = JSON.parse(text) as { token?: string; access_token?: string; expires_in?: number; issued_at?: string };
    const token = body.token ?? body.access_token;
    if (!token) throw new TokenError(`token response from ${challenge.realm} holds no token`, res.status);
    const issued = body.issued_at ? Date.parse(body.issued_at) : NaN;
    const start = Number.isFinite(issued) ? Math.min(issued, Date.now()) : Date.now();
    return { token, expiresAt: start + (body.expires_in ?? DEFAULT_EXPIRES_IN_S) * 1000 };
  }
}
