// The authentication service a server runs: who a client is (passwords, tokens), what it
// may do (rules) and the tokens it is given. HTTP lives in src/server/auth.ts.

import { createHash, createHmac, randomBytes } from 'node:crypto';
import type { User, UserService } from '../src/registry/users.js';
import { resolveAuthConfig, type AuthConfig, type ResolvedAuthConfig } from './config.js';
import { loadOrCreateSigningKey } from './keys.js';
import { DECOY_HASH, hashQueueFull, verifyPassword } from './passwords.js';
import { grant, permits, type Identity } from './rules.js';
import { formatScope, type AccessEntry } from './scope.js';
import { LoginThrottle } from './throttle.js';
import { InvalidTokenError, TokenIssuer, TokenVerifier } from './tokens.js';

/** The token endpoint's answer; `token` and `access_token` are the same, for old and OAuth2 clients. */
export interface TokenResponse {
  token: string;
  access_token: string;
  expires_in: number;
  issued_at: string;
  scope: string;
  refresh_token?: string;
}

/** How long a checked password is remembered, so Basic auth does not run scrypt on every request. */
const CREDENTIAL_CACHE_MS = 60_000;
const CREDENTIAL_CACHE_MAX = 1000;

/** A login refused without checking the password: throttled, or too many checks at once. Answer 429 with Retry-After. */
export class LoginRefusedError extends Error {
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super(message);
  }
}

export class AuthService {
  readonly throttle: LoginThrottle;
  readonly verifier: TokenVerifier;
  private readonly issuer: TokenIssuer;
  // Keyed by an HMAC of (stored hash, password) under a per-process key: a password
  // change alters the stored hash, so a changed password is never served from here.
  private readonly checked = new Map<string, number>();
  /** Checks in progress, by the same key: concurrent requests with the same credentials share one hash and one attempt. */
  private readonly checking = new Map<string, Promise<boolean>>();
  private readonly cacheKey = randomBytes(32);
  /** Keys the password fingerprints in refresh tokens; derived from the signing key so every replica agrees. */
  private readonly fingerprintKey: Buffer;

  constructor(
    readonly config: ResolvedAuthConfig,
    private readonly users: UserService,
    dataDir: string,
  ) {
    const key = loadOrCreateSigningKey(dataDir);
    this.fingerprintKey = createHash('sha256').update('refresh-password\0').update(key.privateKey.export({ format: 'der', type: 'pkcs8' })).digest();
    this.throttle = new LoginThrottle(config.loginThrottle);
    this.issuer = new TokenIssuer(key, {
      issuer: config.issuer,
      service: config.service,
      ttlSeconds: config.tokenTtlSeconds,
      refreshTtlSeconds: config.refreshTtlSeconds,
    });
    this.verifier = new TokenVerifier(
      key,
      { issuer: config.issuer, service: config.service, ttlSeconds: config.tokenTtlSeconds, refreshTtlSeconds: config.refreshTtlSeconds },
      config.externalIssuers,
    );
  }

  /** The service on the registry's users service (registry.users) and its data directory (the signing key). */
  static open(config: AuthConfig, users: UserService, dataDir: string): AuthService {
    return new AuthService(resolveAuthConfig(config), users, dataDir);
  }

  /**
   * The identity for a user name and password from a client address, or null when they
   * do not match. Throws LoginRefusedError, before any hashing, when the address or the
   * account is throttled or the hash queue is full (auth/throttle.ts, auth/passwords.ts).
   */
  async login(name: string, password: string, address: string): Promise<Identity | null> {
    const user = await this.users.get(name);
    const hash = user?.passwordHash ?? DECOY_HASH;
    const cacheKey = createHmac('sha256', this.cacheKey).update(`${name}\0${hash}\0${password}`).digest('base64');
    // Refused while throttled even with the right password: otherwise the answer would tell a guess.
    const wait = this.throttle.retryAfter(address, name);
    if (wait > 0) throw new LoginRefusedError('too many failed logins, try again later', wait);
    const until = this.checked.get(cacheKey);
    if (user && until !== undefined && until >= Date.now()) return identityOf(user);
    let check = this.checking.get(cacheKey);
    if (!check) {
      if (hashQueueFull()) throw new LoginRefusedError('too many logins in progress, try again shortly', 1);
      const attempt = this.throttle.begin(address, name);
      if (typeof attempt === 'number') throw new LoginRefusedError('too many failed logins, try again later', attempt);
      // An unknown user is checked against a decoy, so the answer takes as long as for a known one.
      check = verifyPassword(password, hash).then((ok) => {
        if (ok && user) {
          attempt.succeeded();
          if (this.checked.size >= CREDENTIAL_CACHE_MAX) this.checked.clear();
          this.checked.set(cacheKey, Date.now() + CREDENTIAL_CACHE_MS);
        }
        return ok && user !== undefined;
      });
      this.checking.set(cacheKey, check);
      void check.finally(() => this.checking.delete(cacheKey)).catch(() => {});
    }
    return (await check) && user ? identityOf(user) : null;
  }

  /** The current identity of a user (admin flag and groups may have changed since a token was issued). */
  async identity(name: string): Promise<Identity | null> {
    const user = await this.users.get(name);
    return user ? identityOf(user) : null;
  }

  /**
   * The user a refresh token was issued to, if the token is valid and their password has
   * not changed since: the token carries a fingerprint of the password hash (a new salt
   * each time), which holds to the instant, where a change time in seconds would not.
   */
  async refresh(refreshToken: string): Promise<Identity | null> {
    try {
      const { subject, password } = await this.verifier.verifyRefresh(refreshToken);
      const user = await this.users.get(subject);
      return user && password === this.passwordFingerprint(user.passwordHash) ? identityOf(user) : null;
    } catch (err) {
      if (err instanceof InvalidTokenError) return null;
      throw err;
    }
  }

  permits(identity: Identity, type: string, name: string, action: string): boolean {
    return permits(this.config.policy, identity, type, name, action);
  }

  /** A token granting what was requested as far as the rules allow, with a refresh token when `offline`. */
  async issue(identity: Identity, requested: AccessEntry[], offline: boolean): Promise<TokenResponse> {
    const access = grant(this.config.policy, identity, requested);
    const subject = identity.kind === 'user' ? identity.name : '';
    const issued = await this.issuer.access(subject, access);
    const response: TokenResponse = {
      token: issued.token,
      access_token: issued.token,
      expires_in: issued.expiresIn,
      issued_at: issued.issuedAt,
      scope: access.map(formatScope).join(' '),
    };
    const user = offline && identity.kind === 'user' ? await this.users.get(subject) : undefined;
    if (user) response.refresh_token = await this.issuer.refresh(subject, this.passwordFingerprint(user.passwordHash));
    return response;
  }

  private passwordFingerprint(passwordHash: string): string {
    return createHmac('sha256', this.fingerprintKey).update(passwordHash).digest('base64url').slice(0, 22);
  }
}

function identityOf(user: User): Identity {
  return { kind: 'user', name: user.name, admin: user.admin, groups: user.groups };
}
