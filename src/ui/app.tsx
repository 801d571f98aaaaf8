// The web UI's routes, on the registry's own address beside /v2: `/` lists repositories,
// `/r/<name>` is a repository, `/r/<name>/-/manifest/<reference>` a manifest, and `/-/...`
// holds sign-in, storage, users and the static files (`-` cannot start a repository
// name component, so these never collide with a name). Pages are rendered on the
// server; reads go through the registry's services with the API's access rules.

import type { Context, Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { JSX } from 'hono/jsx/jsx-runtime';
import { RegistryError } from '../registry/errors.js';
import type { Registry } from '../registry/registry.js';
import { LoginRefusedError, type AuthService } from '../../auth/service.js';
import type { ClientAddresses } from '../server/client-address.js';
import type { Env } from '../server/routes.js';
import { ASSET_PREFIX, loadAssets } from './assets.js';
import { registryData, type UiData } from './data.js';
import { Sessions } from './session.js';
import { Message, NotFound, type PageContext } from './pages/layout.js';
import { decodeCursor, RepositoryList, RepositoryPage, repoPath } from './pages/repositories.js';
import { ManifestPage, type Descriptor, type ImageConfig, type ManifestPageProps } from './pages/manifest.js';
import { DeleteConfirm, LoginPage, UsagePage, UsersPage } from './pages/admin.js';

type Ctx = Context<Env>;

export interface UiOptions {
  registry: Registry;
  /** The authentication service when --auth is token or basic; without it everyone may do everything, as on /v2. */
  auth?: AuthService;
  /** Who a request comes from (trusted proxies): the failed-login throttle counts by it. */
  clients: ClientAddresses;
  readOnly: boolean;
}

const REPOSITORIES_PER_PAGE = 100;
const TAGS_PER_PAGE = 100;
/** Image configs up to this size are shown; larger ones are only linked. */
const MAX_CONFIG_BYTES = 1024 * 1024;
const FORGED = 'This form has expired or came from another site: reload the page and try again.';
/** A base layer may be in thousands of repositories: the page names this many and counts the rest. */
const SHARED_SHOWN = 10;
/** Forms are small; anything larger is refused before it is read. */
const MAX_FORM_BYTES = 64 * 1024;

/** No inline script or style, no other origin: what a pushed label could smuggle in cannot run. */
const PAGE_HEADERS = {
  'Content-Security-Policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'same-origin',
  'Cache-Control': 'no-store',
};

export function uiRoutes(app: Hono<Env>, options: UiOptions): void {
  const data: UiData = registryData(options.registry);
  const sessions = new Sessions(options.auth, options.clients);
  const assets = loadAssets();
  const { readOnly } = options;

  async function pageContext(c: Ctx): Promise<PageContext> {
    return {
      viewer: await sessions.viewer(c),
      csrf: sessions.csrfToken(c),
      asset: (name) => assets.url(name),
      host: sessions.publicBase(c).host,
      readOnly,
    };
  }

  async function render(c: Ctx, element: JSX.Element, status = 200): Promise<Response> {
    const html = `<!doctype html>${await element.toString()}`;
    return c.body(html, status as 200, { ...PAGE_HEADERS, 'Content-Type': 'text/html; charset=utf-8' });
  }

  /** Unknown, invalid and forbidden names all answer the same 404: a page never confirms that a hidden repository exists. */
  const notFound = async (c: Ctx) => render(c, <NotFound ctx={await pageContext(c)} />, 404);

  const pages = (handler: (c: Ctx) => Promise<Response>) => async (c: Ctx) => {
    try {
      return await handler(c);
    } catch (err) {
      if (err instanceof RegistryError && (err.status === 404 || err.status === 400)) return notFound(c);
      throw err;
    }
  };

  const formLimit = bodyLimit({ maxSize: MAX_FORM_BYTES, onError: (c) => c.text('form too large', 413) });
  async function readForm(c: Ctx): Promise<Record<string, string>> {
    const body = await c.req.parseBody();
    return Object.fromEntries(Object.entries(body).filter((e): e is [string, string] => typeof e[1] === 'string'));
  }
  const refused = async (c: Ctx, text: string, status: number) =>
    render(c, <Message ctx={await pageContext(c)} title="Refused" text={text} status="error" />, status);

  app.get(`${ASSET_PREFIX}:file`, (c) => {
    const asset = assets.byFile(c.req.param('file'));
    if (!asset) return c.text('not found', 404);
    return c.body(new Uint8Array(asset.body), 200, {
      'Content-Type': asset.type,
      'Cache-Control': 'public, max-age=31536000, immutable',
      'X-Content-Type-Options': 'nosniff',
    });
  });

  app.get(
    '/',
    pages(async (c) => {
      const ctx = await pageContext(c);
      const q = (c.req.query('q') ?? '').trim().toLowerCase().slice(0, 255);
      const after = c.req.query('after') ?? '';
      const { items, next } = await data.repositories(after, REPOSITORIES_PER_PAGE, q, (name) => ctx.viewer.may('pull', name));
      return render(c, <RepositoryList ctx={ctx} items={items} q={q} after={after} next={next} />);
    }),
  );

  app.get(
    '/r/*',
    pages(async (c) => {
      const path = c.req.path.slice('/r/'.length);
      const split = path.indexOf('/-/');
      const name = split < 0 ? path : path.slice(0, split);
      const rest = split < 0 ? '' : path.slice(split + 3);
      const ctx = await pageContext(c);
      if (!ctx.viewer.may('pull', name)) return notFound(c);
      const mayDelete = !readOnly && ctx.viewer.may('delete', name);

      if (rest === '') {
        const repo = await data.repository(name);
        const q = (c.req.query('q') ?? '').trim().slice(0, 128);
        const cursor = decodeCursor(c.req.query('after'));
        const { items, next } = await data.tags(name, cursor, q, TAGS_PER_PAGE);
        return render(c, <RepositoryPage ctx={ctx} repo={repo} tags={items} q={q} next={next} paged={cursor !== undefined} mayDelete={mayDelete} />);
      }
      if (rest.startsWith('manifest/')) {
        return render(c, <ManifestPage {...await manifestProps(ctx, name, rest.slice('manifest/'.length), mayDelete)} />);
      }
      if (rest.startsWith('raw/')) {
        const m = await data.manifest(name, rest.slice('raw/'.length));
        return c.body(new Uint8Array(m.bytes), 200, {
          ...PAGE_HEADERS,
          'Content-Security-Policy': "default-src 'none'; sandbox",
          'Content-Type': 'text/plain; charset=utf-8',
          'Docker-Content-Digest': m.digest,
        });
      }
      if (rest === 'delete') {
        if (!mayDelete) return readOnly ? refused(c, 'The registry is in read-only mode: nothing can be deleted.', 405) : notFound(c);
        const tag = c.req.query('tag');
        const digest = c.req.query('digest');
        if (tag) {
          await data.manifest(name, tag); // 404 for a tag that is not there
          return render(c, <DeleteConfirm ctx={ctx} name={name} tag={tag} tags={[]} />);
        }
        if (digest) {
          const m = await data.manifest(name, digest);
          return render(c, <DeleteConfirm ctx={ctx} name={name} digest={m.digest} tags={await data.tagsOf(name, m.digest)} />);
        }
      }
      return notFound(c);
    }),
  );

  async function manifestProps(ctx: PageContext, name: string, reference: string, mayDelete: boolean): Promise<ManifestPageProps> {
    const manifest = await data.manifest(name, reference);
    let json: ManifestPageProps['json'];
    try {
      json = JSON.parse(manifest.bytes.toString('utf8'));
    } catch {
      json = undefined;
    }
    let config: ImageConfig | undefined;
    let configTooLarge = false;
    const configDescriptor = json?.config;
    if (configDescriptor && typeof configDescriptor.digest === 'string') {
      const bytes = await data.smallBlob(name, configDescriptor.digest, MAX_CONFIG_BYTES).catch(() => undefined);
      if (bytes === undefined) configTooLarge = true;
      else {
        try {
          const parsed: unknown = JSON.parse(bytes.toString('utf8'));
          if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) config = parsed as ImageConfig;
        } catch {
          // an artifact's config need not be JSON
        }
      }
    }
    const descriptors = (Array.isArray(json?.layers) ? json.layers : []).filter((l): l is Descriptor => typeof l?.digest === 'string');
    const layers = await Promise.all(
      descriptors.map(async (l) => {
        // Only repositories the viewer may pull: a shared layer must not reveal a hidden name.
        const holders = (await data.repositoriesWithBlob(l.digest).catch(() => [])).filter((r) => r !== name && ctx.viewer.may('pull', r));
        return { ...l, size: Number(l.size) || 0, sharedWith: holders.slice(0, SHARED_SHOWN), sharedMore: Math.max(0, holders.length - SHARED_SHOWN) };
      }),
    );
    return {
      ctx,
      name,
      reference,
      manifest,
      json,
      config,
      configTooLarge,
      layers,
      imageSize: await data.imageSize(name, manifest.digest),
      referrers: await data.referrers(name, manifest.digest),
      tags: await data.tagsOf(name, manifest.digest),
      mayDelete,
    };
  }

  app.post(
    '/r/*',
    formLimit,
    pages(async (c) => {
      const path = c.req.path.slice('/r/'.length);
      if (!path.endsWith('/-/delete')) return notFound(c);
      const name = path.slice(0, -'/-/delete'.length);
      const form = await readForm(c);
      if (!sessions.csrfOk(c, form)) return refused(c, FORGED, 403);
      const viewer = await sessions.viewer(c);
      if (!viewer.may('pull', name)) return notFound(c);
      if (readOnly) return refused(c, 'The registry is in read-only mode: nothing can be deleted.', 405);
      if (!viewer.may('delete', name)) return refused(c, 'You may not delete in this repository.', 403);
      const reference = form.tag || form.digest;
      if (!reference) return notFound(c);
      await data.delete(name, reference);
      return c.redirect(repoPath(name), 303);
    }),
  );

  app.get('/-/login', async (c) => {
    if (!sessions.authOn) return c.redirect('/', 303);
    return render(c, <LoginPage ctx={await pageContext(c)} next={safeNext(c.req.query('next'))} />);
  });

  app.post('/-/login', formLimit, async (c) => {
    if (!options.auth) return c.redirect('/', 303);
    const form = await readForm(c);
    const next = safeNext(form.next);
    if (!sessions.csrfOk(c, form)) return refused(c, FORGED, 403);
    const name = form.username ?? '';
    let identity;
    try {
      // The same check, throttle and hashing queue as docker login.
      identity = await options.auth.login(name, form.password ?? '', options.clients.of(c.env.incoming));
    } catch (err) {
      if (!(err instanceof LoginRefusedError)) throw err;
      c.header('Retry-After', String(err.retryAfterSeconds));
      return render(c, <LoginPage ctx={await pageContext(c)} error={`Sign-in refused: ${err.message}.`} name={name} next={next} />, 429);
    }
    if (!identity) return render(c, <LoginPage ctx={await pageContext(c)} error="Wrong user name or password." name={name} next={next} />, 401);
    await sessions.start(c, identity);
    return c.redirect(next, 303);
  });

  app.post('/-/logout', formLimit, async (c) => {
    const form = await readForm(c);
    if (!sessions.csrfOk(c, form)) return refused(c, FORGED, 403);
    sessions.end(c);
    return c.redirect('/', 303);
  });

  app.get('/-/usage', async (c) => {
    const ctx = await pageContext(c);
    if (!ctx.viewer.seesUsage) return notFound(c);
    return render(c, <UsagePage ctx={ctx} usage={await data.usage()} gc={await data.gcStatus()} />);
  });

  app.get('/-/users', async (c) => {
    const ctx = await pageContext(c);
    if (!ctx.viewer.admin) return notFound(c);
    return render(c, <UsersPage ctx={ctx} users={await data.users.list()} />);
  });

  app.post('/-/users', formLimit, async (c) => {
    const form = await readForm(c);
    if (!sessions.csrfOk(c, form)) return refused(c, FORGED, 403);
    const viewer = await sessions.viewer(c);
    if (!viewer.admin) return notFound(c);
    if (readOnly) return refused(c, 'The registry is in read-only mode: users cannot be changed.', 405);
    const name = form.name ?? '';
    const groups = (form.groups ?? '').split(',').map((g) => g.trim()).filter(Boolean);
    let notice: { text: string; error: boolean };
    try {
      switch (form.action) {
        case 'add':
          await data.users.add({ name, password: form.password ?? '', admin: form.admin === '1', groups });
          notice = { text: `User ${name} added.`, error: false };
          break;
        case 'remove':
          if (name === viewer.user) throw new Error('you cannot remove yourself');
          if (!(await data.users.remove(name))) throw new Error(`no user "${name}"`);
          notice = { text: `User ${name} removed.`, error: false };
          break;
        case 'password':
          await data.users.setPassword(name, form.password ?? '');
          notice = { text: `Password of ${name} changed: their sessions and refresh tokens end.`, error: false };
          break;
        case 'groups':
          await data.users.setGroups(name, groups);
          notice = { text: `Groups of ${name} set.`, error: false };
          break;
        default:
          throw new Error('unknown action');
      }
    } catch (err) {
      notice = { text: (err as Error).message, error: true };
    }
    const ctx = await pageContext(c);
    return render(c, <UsersPage ctx={ctx} users={await data.users.list()} notice={notice} />, notice.error ? 400 : 200);
  });
}

/** Where to go after signing in: a path on this site only, never another host. */
function safeNext(raw: string | undefined): string {
  return raw && raw.startsWith('/') && !raw.startsWith('//') && !raw.includes('\\') ? raw : '/';
}
