// Registry tokens: short-lived JWTs in the Docker token format (`iss`, `sub`, `aud`,
// `exp`, `nbf`, `iat`, `jti`, a `kid` header and the `access` claim), signed by Berth's
// own key, and the verification the registry does on every request. Tokens of an external
// issuer are verified with that issuer's configured key or JWKS instead.

import { randomUUID, type KeyObject } from 'node:crypto';
import { SignJWT, decodeJwt, decodeProtectedHeader, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import type { SigningKey } from './keys.js';
import type { AccessEntry } from './scope.js';

/** Any token that fails verification, whatever the reason; answered with `error="invalid_token"`. */
export class InvalidTokenError extends Error {}

export interface IssuedToken {
  token: string;
  expiresIn: number;
  /** RFC 3339, as the token spec's `issued_at`. */
  issuedAt: string;
}

export interface VerifiedToken {
  issuer: string;
  /** The account the token was issued to; '' for an anonymous token. */
  subject: string;
  access: AccessEntry[];
  /** Whether Berth issued it (its subject is then one of Berth's users). */
  own: boolean;
}

export interface ExternalIssuer {
  issuer: string;
  key: KeyObject | JWTVerifyGetKey;
}

/** Asymmetric algorithms only: `none` and HMAC (which a public key could be abused as the secret of) never verify. */
const ASYMMETRIC_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];

/** Clock skew tolerated between the issuer and the registry. */
const CLOCK_TOLERANCE_SECONDS = 30;

/** Refresh tokens carry their own audience so that one can never pass as an access token. */
function refreshAudience(issuer: string): string {
  return `${issuer}#refresh`;
}

export interface TokenSettings {
  issuer: string;
  service: string;
  ttlSeconds: number;
  refreshTtlSeconds: number;
}

export class TokenIssuer {
  constructor(
    private readonly key: SigningKey,
    private readonly settings: TokenSettings,
  ) {}

  async access(subject: string, access: AccessEntry[]): Promise<IssuedToken> {
    const now = Math.floor(Date.now() / 1000);
    const token = await this.sign({ access }, subject, this.settings.service, now, this.settings.ttlSeconds);
    return { token, expiresIn: this.settings.ttlSeconds, issuedAt: new Date(now * 1000).toISOString() };
  }

  /** `password` (a fingerprint of the password hash) ties the token to the password it was issued under. */
  async refresh(subject: string, password: string): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    return this.sign({ pwd: password }, subject, refreshAudience(this.settings.issuer), now, this.settings.refreshTtlSeconds);
  }

  private sign(claims: JWTPayload, subject: string, audience: string, now: number, ttl: number): Promise<string> {
    return new SignJWT(claims)
      .setProtectedHeader({ alg: this.key.alg, kid: this.key.kid, typ: 'JWT' })
      .setIssuer(this.settings.issuer)
      .setSubject(subject)
      .setAudience(audience)
      .setIssuedAt(now)
      .setNotBefore(now)
      .setExpirationTime(now + ttl)
      .setJti(randomUUID())
      .sign(this.key.privateKey);
  }
}

export class TokenVerifier {
  constructor(
    private readonly key: SigningKey,
    private readonly settings: TokenSettings,
    private readonly external: readonly ExternalIssuer[] = [],
  ) {}

  async verifyAccess(token: string): Promise<VerifiedToken> {
    const claimedIssuer = unverifiedIssuer(token);
    const own = claimedIssuer === this.settings.issuer;
    const external = own ? undefined : this.external.find((e) => e.issuer === claimedIssuer);
    if (!own && !external) throw new InvalidTokenError('token from an unknown issuer');
    const payload = own
      ? await this.verifyOwn(token, this.settings.service, this.settings.ttlSeconds)
      : await verify(token, external!.key, { issuer: claimedIssuer, audience: this.settings.service, algorithms: ASYMMETRIC_ALGORITHMS });
    return { issuer: claimedIssuer, subject: payload.sub ?? '', access: accessClaim(payload.access), own };
  }

  /** Verifies one of our refresh tokens; returns its subject and the password fingerprint it was issued under. */
  async verifyRefresh(token: string): Promise<{ subject: string; password: string }> {
    const payload = await this.verifyOwn(token, refreshAudience(this.settings.issuer), this.settings.refreshTtlSeconds);
    if (!payload.sub || typeof payload.pwd !== 'string') throw new InvalidTokenError('refresh token without subject or password');
    return { subject: payload.sub, password: payload.pwd };
  }

  /**
   * One of our own tokens: its `kid` must name our key, and it may not live longer than we
   * issue tokens for (`exp - iat`), so a token signed with a leaked key or under an older,
   * longer lifetime does not outlive the setting.
   */
  private async verifyOwn(token: string, audience: string, ttlSeconds: number): Promise<JWTPayload> {
    if (headerKid(token) !== this.key.kid) throw new InvalidTokenError('token signed with an unknown key (kid)');
    const payload = await verify(token, this.key.publicKey, { issuer: this.settings.issuer, audience, algorithms: [this.key.alg] }, ['iat']);
    if (payload.exp! - payload.iat! > ttlSeconds) throw new InvalidTokenError('token lives longer than this registry issues them');
    return payload;
  }
}

async function verify(
  token: string,
  key: KeyObject | JWTVerifyGetKey,
  options: { issuer: string; audience: string; algorithms: string[] },
  required: string[] = [],
): Promise<JWTPayload> {
  // A key set picks its key by `kid`: without one, any of its keys would do.
  if (typeof key === 'function' && headerKid(token) === undefined) throw new InvalidTokenError('token without kid');
  let payload: JWTPayload;
  try {
    const verifyOptions = { ...options, clockTolerance: CLOCK_TOLERANCE_SECONDS, requiredClaims: ['exp', ...required] };
    // jwtVerify's overloads differ for a key and a key-lookup function.
    ({ payload } =
      typeof key === 'function' ? await jwtVerify(token, key, verifyOptions) : await jwtVerify(token, key, verifyOptions));
  } catch (err) {
    throw new InvalidTokenError(err instanceof Error ? err.message : 'invalid token');
  }
  // jose checks `iat` against the clock only with maxTokenAge: a token "issued" tomorrow is a forgery or a broken clock.
  if (payload.iat !== undefined && payload.iat > Date.now() / 1000 + CLOCK_TOLERANCE_SECONDS) {
    throw new InvalidTokenError('token issued in the future');
  }
  return payload;
}

function headerKid(token: string): string | undefined {
  try {
    const { kid } = decodeProtectedHeader(token);
    return typeof kid === 'string' ? kid : undefined;
  } catch {
    throw new InvalidTokenError('malformed token');
  }
}

function unverifiedIssuer(token: string): string {
  try {
    const { iss } = decodeJwt(token);
    if (typeof iss === 'string') return iss;
  } catch {
    // falls through: not a JWT at all
  }
  throw new InvalidTokenError('malformed token');
}

/** The `access` claim, checked for shape: a token with a malformed claim is invalid, not "no access". */
function accessClaim(value: unknown): AccessEntry[] {
  if (value === undefined) return [];
  const valid =
    Array.isArray(value) &&
    value.every(
      (e) =>
        e !== null &&
        typeof e === 'object' &&
        typeof e.type === 'string' &&
        typeof e.name === 'string' &&
        Array.isArray(e.actions) &&
        e.actions.every((a: unknown) => typeof a === 'string'),
    );
  if (!valid) throw new InvalidTokenError('malformed access claim');
  return (value as AccessEntry[]).map((e) => ({ type: e.type, name: e.name, actions: [...e.actions] }));
}
