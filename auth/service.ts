// The authentication service a server runs: who a client is (passwords, tokens), what it
// may do (rules) and the tokens it is given. HTTP lives in src/server/auth.ts.

import { createHmac, randomBytes } from 'node:crypto';
import type { Db } from '../storage/db.js';
import { UserStore, type User } from '../storage/users.js';
import { resolveAuthConfig, type AuthConfig, type ResolvedAuthConfig } from './config.js';
import { loadOrCreateSigningKey } from './keys.js';
import { DECOY_HASH, verifyPassword } from './passwords.js';
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

export class AuthService {
  readonly throttle: LoginThrottle;
  readonly verifier: TokenVerifier;
  private readonly issuer: TokenIssuer;
  private readonly users: UserStore;
  // Keyed by an HMAC of (stored hash, password) under a per-process key: a password
  // change alters the stored hash, so a changed password is never served from here.
  private readonly checked = new Map<string, number>();
  private readonly cacheKey = randomBytes(32);

  constructor(
    readonly config: ResolvedAuthConfig,
    db: Db,
    dataDir: string,
  ) {
    const key = loadOrCreateSigningKey(dataDir);
    this.users = new UserStore(db);
    this.throttle = new LoginThrottle(config.loginThrottle);
    this.issuer = new TokenIssuer(key, {
      issuer: config.issuer,
      service: config.service,
      ttlSeconds: config.tokenTtlSeconds,
      refreshTtlSeconds: config.refreshTtlSeconds,
    });
    this.verifier = new TokenVerifier(key, config.issuer, config.service, config.externalIssuers);
  }

  static open(config: AuthConfig, db: Db, dataDir: string): AuthService {
    return new AuthService(resolveAuthConfig(config), db, dataDir);
  }

  /** The identity for a user name and password, or null when they do not match. */
  async login(name: string, password: string): Promise<Identity | null> {
    const user = this.users.get(name);
    if (!user) {
      await verifyPassword(password, DECOY_HASH);
      return null;
    }
    const cacheKey = createHmac('sha256', this.cacheKey).update(`${user.passwordHash}\0${password}`).digest('base64');
    const until = this.checked.get(cacheKey);
    if (until === undefined || until < Date.now()) {
      if (!(await verifyPassword(password, user.passwordHash))) return null;
      if (this.checked.size >= CREDENTIAL_CACHE_MAX) this.checked.clear();
      this.checked.set(cacheKey, Date.now() + CREDENTIAL_CACHE_MS);
    }
    return identityOf(user);
  }

  /** The current identity of a user (admin flag and groups may have changed since a token was issued). */
  identity(name: string): Identity | null {
    const user = this.users.get(name);
    return user ? identityOf(user) : null;
  }

  /** The user a refresh token was issued to, if the token is valid and their password has not changed since. */
  async refresh(refreshToken: string): Promise<Identity | null> {
    try {
      const { subject, issuedAt } = await this.verifier.verifyRefresh(refreshToken);
      const user = this.users.get(subject);
      return user && issuedAt >= user.passwordChangedAt ? identityOf(user) : null;
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
    if (offline && identity.kind === 'user') response.refresh_token = await this.issuer.refresh(subject);
    return response;
  }
}

function identityOf(user: User): Identity {
  return { kind: 'user', name: user.name, admin: user.admin, groups: user.groups };
}
