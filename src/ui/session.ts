// Who is looking at a page, and protection of the forms.
//
// Sessions: signing in checks the password with the same service, throttle and rules
// as `docker login` (auth/, src/server/auth.ts); the session cookie holds a refresh
// token of that service, so a password change ends every session of the user, and a
// session sees exactly what the rules let the user pull. The cookie is HttpOnly,
// SameSite=Strict and, under TLS, Secure.
//
// Forms: every state-changing request (POST) must carry the value of the `berth_csrf`
// cookie in its `_csrf` field (double submit) and, when the browser sends them, an
// Origin of this host and a Sec-Fetch-Site of same-origin: another site can neither
// read the cookie nor make the browser send it (SameSite=Strict).
//
// "This site" is the registry as the client sees it (ClientAddresses.baseUrl: publicUrl,
// or a trusted proxy's forwarded host and scheme): cookies are Secure when that is https.

import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { Context } from 'hono';
import { deleteCookie, getCookie, setCookie } from 'hono/cookie';
import type { AuthService } from '../../auth/service.js';
import { ANONYMOUS, type Identity } from '../../auth/rules.js';
import type { ClientAddresses } from '../server/client-address.js';
import type { Env } from '../server/routes.js';

type Ctx = Context<Env>;

const SESSION_COOKIE = 'berth_session';
const CSRF_COOKIE = 'berth_csrf';
export const CSRF_FIELD = '_csrf';

export interface Viewer {
  /** Whether the registry has authentication on (there is then a sign-in page). */
  authOn: boolean;
  /** The signed-in user's name; undefined for anonymous visitors and when authentication is off. */
  user?: string;
  /** May manage users (an admin, with authentication on). */
  admin: boolean;
  /** May see storage usage and the last collection (as `GET /v2/_berth/usage`). */
  seesUsage: boolean;
  may(action: 'pull' | 'delete', repository: string): boolean;
}

/** With authentication off the API lets anyone do anything, and so does the UI. */
const EVERYONE: Viewer = { authOn: false, admin: false, seesUsage: true, may: () => true };

function viewerOf(service: AuthService, identity: Identity): Viewer {
  return {
    authOn: true,
    user: identity.kind === 'user' ? identity.name : undefined,
    admin: identity.kind === 'user' && identity.admin,
    seesUsage: service.permits(identity, 'registry', 'catalog', '*'),
    may: (action, repository) => service.permits(identity, 'repository', repository, action),
  };
}

export class Sessions {
  constructor(
    private readonly service: AuthService | undefined,
    private readonly clients: ClientAddresses,
  ) {}

  /** The registry's base URL as the browser sees it (`https://host:port`). */
  publicBase(c: Ctx): URL {
    return new URL(this.clients.baseUrl(c.env.incoming));
  }

  private cookieOptions(c: Ctx) {
    return { path: '/', httpOnly: true, sameSite: 'Strict', secure: this.publicBase(c).protocol === 'https:' } as const;
  }

  get authOn(): boolean {
    return this.service !== undefined;
  }

  async viewer(c: Ctx): Promise<Viewer> {
    if (!this.service) return EVERYONE;
    const token = getCookie(c, SESSION_COOKIE);
    const identity = token ? await this.service.refresh(token) : null;
    return viewerOf(this.service, identity ?? ANONYMOUS);
  }

  /** Starts a session for a checked user: the cookie, and a fresh CSRF token. */
  async start(c: Ctx, identity: Identity): Promise<void> {
    const { refresh_token: token } = await this.service!.issue(identity, [], true);
    setCookie(c, SESSION_COOKIE, token!, this.cookieOptions(c));
    setCookie(c, CSRF_COOKIE, newCsrfToken(), this.cookieOptions(c));
  }

  end(c: Ctx): void {
    deleteCookie(c, SESSION_COOKIE, this.cookieOptions(c));
    setCookie(c, CSRF_COOKIE, newCsrfToken(), this.cookieOptions(c));
  }

  /** The CSRF token for this page's forms; sets the cookie when the browser has none yet. */
  csrfToken(c: Ctx): string {
    const existing = getCookie(c, CSRF_COOKIE);
    if (existing && /^[A-Za-z0-9_-]{32}$/.test(existing)) return existing;
    const token = newCsrfToken();
    setCookie(c, CSRF_COOKIE, token, this.cookieOptions(c));
    return token;
  }

  /** Whether a POST comes from one of this registry's own pages. */
  csrfOk(c: Ctx, form: Record<string, unknown>): boolean {
    const site = c.req.header('sec-fetch-site');
    if (site !== undefined && site !== 'same-origin') return false;
    const origin = c.req.header('origin');
    if (origin !== undefined) {
      let host: string;
      try {
        host = new URL(origin).host;
      } catch {
        return false;
      }
      if (host !== this.publicBase(c).host) return false;
    }
    const cookie = getCookie(c, CSRF_COOKIE);
    const field = form[CSRF_FIELD];
    if (!cookie || typeof field !== 'string') return false;
    const a = Buffer.from(cookie);
    const b = Buffer.from(field);
    return a.length === b.length && timingSafeEqual(a, b);
  }
}

function newCsrfToken(): string {
  return randomBytes(24).toString('base64url');
}
