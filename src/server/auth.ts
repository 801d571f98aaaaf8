// Authentication on the HTTP side: the token endpoint (`/auth/token`, the Docker token
// spec's GET and the OAuth2 POST form) and the check in front of every /v2 request.
// Who may do what is decided in auth/; this module turns it into challenges, 401s,
// 403s and 429s, and tells the routes what the caller may do through `permits`.
//
// In `token` mode /v2 accepts only Bearer tokens (ours, or an external issuer's). In
// `basic` mode /v2 takes Basic credentials directly, as the reference registry does
// with htpasswd, and there is no token endpoint.

import type { Context, MiddlewareHandler } from 'hono';
import { RegistryError } from '../registry/errors.js';
import type { Registry } from '../registry/registry.js';
import { basicChallenge, bearerChallenge, requiredAccess, type RequiredAccess } from '../../auth/access.js';
import type { AuthConfig } from '../../auth/config.js';
import { ANONYMOUS, type Identity } from '../../auth/rules.js';
import { accessAllows, formatScope, parseScopes } from '../../auth/scope.js';
import { AuthService, LoginRefusedError } from '../../auth/service.js';
import { InvalidTokenError, type VerifiedToken } from '../../auth/tokens.js';
import { ClientAddresses } from './client-address.js';
import { readLimited } from './http.js';
import type { Env } from './routes.js';

type Ctx = Context<Env>;
type Permits = (type: string, name: string, action: string) => boolean;

export const TOKEN_PATH = '/auth/token';

/** The token endpoint's form is a few scopes and credentials: anything larger is refused unread. */
const MAX_TOKEN_FORM_BYTES = 64 * 1024;

/**
 * The middleware for `config.mode` (token or basic) on the registry's users service and
 * data directory; `clients` says who a request comes from and where it was sent (publicUrl,
 * trusted proxies); `service` when the caller shares it (the web UI signs in with it).
 */
export function authMiddleware(
  registry: Pick<Registry, 'users' | 'dataDir'>,
  config: AuthConfig,
  clients = new ClientAddresses(),
  service = AuthService.open(config, registry.users, registry.dataDir),
): MiddlewareHandler<Env> {
  const { mode } = service.config;
  if (mode === 'none') throw new Error('authMiddleware: auth mode is none');
  const http: HttpContext = { service, clients };
  const checkV2 = mode === 'token' ? bearerCheck(http) : basicCheck(http);
  const tokenEndpoint = tokenHandler(http);

  return async (c, next) => {
    const path = c.req.path;
    if (mode === 'token' && path === TOKEN_PATH) return tokenEndpoint(c);
    if (path !== '/v2' && !path.startsWith('/v2/')) return next();
    c.set('permits', await checkV2(c, requiredAccess(c.req.method, path)));
    await next();
  };
}

function unauthorized(message: string, challenge: string, needed?: RequiredAccess): RegistryError {
  const detail =
    needed?.kind === 'resource' ? [{ type: needed.type, name: needed.name, action: needed.action }] : undefined;
  return new RegistryError('UNAUTHORIZED', message, detail, { headers: { 'WWW-Authenticate': challenge } });
}

function denied(needed: RequiredAccess & { kind: 'resource' }): RegistryError {
  return new RegistryError('DENIED', 'requested access to the resource is denied', [
    { type: needed.type, name: needed.name, action: needed.action },
  ]);
}

interface HttpContext {
  service: AuthService;
  clients: ClientAddresses;
}

/** Checks a password under the failed-login throttle of the client's address and the account; 429 when refused. */
async function throttledLogin({ service, clients }: HttpContext, c: Ctx, name: string, password: string): Promise<Identity | null> {
  try {
    return await service.login(name, password, clients.groupOf(c.env.incoming));
  } catch (err) {
    if (!(err instanceof LoginRefusedError)) throw err;
    throw new RegistryError('TOOMANYREQUESTS', err.message, undefined, {
      headers: { 'Retry-After': String(err.retryAfterSeconds) },
    });
  }
}

function basicCredentials(header: string | undefined): { name: string; password: string } | undefined {
  const m = header && /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (!m) return undefined;
  const decoded = Buffer.from(m[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  return { name: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

function bearerToken(header: string | undefined): string | undefined {
  const m = header && /^Bearer\s+(\S+)\s*$/i.exec(header);
  return m ? m[1] : undefined;
}

/** The token endpoint announced in challenges: `auth.realm`, else this server's public URL. */
function realmOf({ service, clients }: HttpContext, c: Ctx): string {
  return service.config.realm ?? `${clients.baseUrl(c.env.incoming)}${TOKEN_PATH}`;
}

function bearerCheck(http: HttpContext) {
  const { service } = http;
  return async (c: Ctx, needed: RequiredAccess): Promise<Permits> => {
    const scope =
      needed.kind === 'resource' ? formatScope({ type: needed.type, name: needed.name, actions: needed.challengeActions }) : undefined;
    const challenge = (error?: 'invalid_token' | 'insufficient_scope') =>
      bearerChallenge({ realm: realmOf(http, c), service: service.config.service, scope, error });

    const raw = bearerToken(c.req.header('authorization'));
    if (!raw) throw unauthorized('authentication required', challenge(), needed);
    let token: VerifiedToken;
    try {
      token = await service.verifier.verifyAccess(raw);
    } catch (err) {
      if (err instanceof InvalidTokenError) throw unauthorized('invalid token', challenge('invalid_token'), needed);
      throw err;
    }
    const permits: Permits = (type, name, action) => accessAllows(token.access, type, name, action);
    if (needed.kind === 'identity' || permits(needed.type, needed.name, needed.action)) return permits;

    // The token lacks the action. If one of our users asked but the rules forbid it, a new
    // token would not help either: say so (403). Otherwise tell the client which scope to ask for.
    if (token.own && token.subject !== '') {
      const identity = await service.identity(token.subject);
      if (identity && !service.permits(identity, needed.type, needed.name, needed.action)) throw denied(needed);
    }
    throw unauthorized('insufficient scope', challenge('insufficient_scope'), needed);
  };
}

function basicCheck(http: HttpContext) {
  const { service } = http;
  return async (c: Ctx, needed: RequiredAccess): Promise<Permits> => {
    const challenge = basicChallenge(service.config.service);
    const credentials = basicCredentials(c.req.header('authorization'));
    let identity: Identity = ANONYMOUS;
    if (credentials) {
      const user = await throttledLogin(http, c, credentials.name, credentials.password);
      if (!user) throw unauthorized('invalid user name or password', challenge, needed);
      identity = user;
    }
    const permits: Permits = (type, name, action) => service.permits(identity, type, name, action);
    if (needed.kind === 'identity') {
      // Anonymous clients pass the ping only when anonymous pull is on.
      if (identity.kind === 'user' || service.config.policy.anonymousPull) return permits;
      throw unauthorized('authentication required', challenge, needed);
    }
    if (permits(needed.type, needed.name, needed.action)) return permits;
    if (identity.kind === 'anonymous') throw unauthorized('authentication required', challenge, needed);
    throw denied(needed);
  };
}

function badRequest(message: string): RegistryError {
  return new RegistryError('UNSUPPORTED', message, undefined, { status: 400 });
}

function tokenHandler(http: HttpContext) {
  const { service } = http;
  const { config } = service;
  const loginFailed = () => unauthorized('invalid user name or password', basicChallenge(config.service));
  const checkService = (value: string | undefined) => {
    if (value !== undefined && value !== config.service) throw badRequest(`unknown service "${value}"`);
  };
  const respond = async (c: Ctx, identity: Identity, scopes: string[], offline: boolean) => {
    const body = await service.issue(identity, parseScopes(scopes), offline);
    return c.json(body, 200, { 'Cache-Control': 'no-store' });
  };

  return async (c: Ctx): Promise<Response> => {
    if (c.req.method === 'GET') {
      // The Docker token spec: Basic credentials, or none for an anonymous token.
      checkService(c.req.query('service'));
      let identity: Identity = ANONYMOUS;
      const header = c.req.header('authorization');
      if (header) {
        const credentials = basicCredentials(header);
        if (!credentials) throw badRequest('token requests take Basic credentials');
        const account = c.req.query('account');
        if (account !== undefined && account !== '' && account !== credentials.name) {
          throw badRequest('account does not match the credentials');
        }
        const user = await throttledLogin(http, c, credentials.name, credentials.password);
        if (!user) throw loginFailed();
        identity = user;
      }
      return respond(c, identity, c.req.queries('scope') ?? [], c.req.query('offline_token') === 'true');
    }
    if (c.req.method === 'POST') {
      // The OAuth2 form: password grant (containerd tries it first) and refresh grant (docker).
      const form = new URLSearchParams((await readLimited(c.env.incoming, MAX_TOKEN_FORM_BYTES, 'token request')).toString('utf8'));
      checkService(form.get('service') ?? undefined);
      const scopes = form.getAll('scope');
      const offline = form.get('access_type') === 'offline';
      const grantType = form.get('grant_type');
      if (grantType === 'password') {
        const name = form.get('username');
        const password = form.get('password');
        if (!name || password === null) throw badRequest('password grant needs username and password');
        const user = await throttledLogin(http, c, name, password);
        if (!user) throw loginFailed();
        return respond(c, user, scopes, offline);
      }
      if (grantType === 'refresh_token') {
        const refreshToken = form.get('refresh_token');
        if (!refreshToken) throw badRequest('refresh grant needs refresh_token');
        const user = await service.refresh(refreshToken);
        if (!user) {
          throw new RegistryError('UNAUTHORIZED', 'invalid refresh token', undefined, {
            headers: { 'WWW-Authenticate': bearerChallenge({ realm: realmOf(http, c), service: config.service, error: 'invalid_token' }) },
          });
        }
        return respond(c, user, scopes, offline);
      }
      throw badRequest(`unsupported grant_type "${grantType ?? ''}"`);
    }
    throw new RegistryError('UNSUPPORTED', 'the token endpoint takes GET and POST', undefined, {
      status: 405,
      headers: { Allow: 'GET, POST' },
    });
  };
}
