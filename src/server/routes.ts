// The /v2 API of the OCI Distribution Spec v1.1. Routes speak HTTP only: they parse
// the request, call the registry's services and shape the response.
//
// The paths are matched by the route table (route-table.ts) rather than by Hono's
// router: repository names contain slashes. The name is then checked against the
// spec's grammar by the services.

import type { Context } from 'hono';
import type { HttpBindings } from '@hono/node-server';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import { RegistryError } from '../registry/errors.js';
import { uploadHeaders } from '../registry/blobs.js';
import { MAX_MANIFEST_BYTES } from '../registry/manifest.js';
import type { Registry } from '../registry/registry.js';
import { matchRoute, type RouteName } from './route-table.js';
import { API_VERSION_HEADER, hasBody, parseN, parseRange, readLimited, uploadBody } from './http.js';

export type Env = {
  Bindings: HttpBindings;
  Variables: {
    requestId: string;
    /** Set by the auth middleware: whether the caller may do `action` on a resource. */
    permits?: (type: string, name: string, action: string) => boolean;
  };
};
type Ctx = Context<Env>;

/** Catalog pages: the reference registry's default and maximum page sizes. */
const CATALOG_DEFAULT_N = 100;
const CATALOG_MAX_N = 1000;
const TAGS_MAX_N = 10_000;

type Handler = (c: Ctx, m: [string, string?, string?]) => Promise<Response>;

export function v2Routes(registry: Registry) {
  const { blobs, manifests, tags, catalog: repositories, referrers } = registry;

  const blobHeaders = (digest: string, size: number) => ({
    ...API_VERSION_HEADER,
    'Content-Type': 'application/octet-stream',
    'Content-Length': String(size),
    'Docker-Content-Digest': digest,
    'Accept-Ranges': 'bytes',
    ETag: `"${digest}"`,
    'Cache-Control': 'max-age=31536000',
  });

  // The handlers of the route table's routes (route-table.ts), by route and method.
  const handlers: Partial<Record<RouteName, Partial<Record<string, Handler>>>> = {
    'upload-start': {
      async POST(c, [, name]) {
        const mount = c.req.query('mount');
        const digest = c.req.query('digest');
        if (mount !== undefined) {
          const from = c.req.query('from');
          const permits = c.get('permits');
          if (await blobs.mount(name!, mount, from, (repo) => permits?.('repository', repo, 'pull') ?? true)) {
            return created(`/v2/${name}/blobs/${mount}`, mount);
          }
        } else if (digest !== undefined) {
          await blobs.putMonolithic(name!, digest, uploadBody(c.env.incoming));
          return created(`/v2/${name}/blobs/${digest}`, digest);
        }
        const upload = await blobs.startUpload(name!);
        return empty(202, uploadHeaders(name!, upload.uuid, 0));
      },
    },
    'upload': {
      async GET(c, [, name, uuid]) {
        const s = await blobs.status(name!, uuid!);
        return empty(204, uploadHeaders(name!, uuid!, s.offset));
      },
      async PATCH(c, [, name, uuid]) {
        const s = await blobs.patch(name!, uuid!, uploadBody(c.env.incoming));
        return empty(202, uploadHeaders(name!, uuid!, s.offset));
      },
      async PUT(c, [, name, uuid]) {
        const req = c.env.incoming;
        const { digest } = await blobs.complete(name!, uuid!, c.req.query('digest'), hasBody(req) ? uploadBody(req) : undefined);
        return created(`/v2/${name}/blobs/${digest.value}`, digest.value);
      },
      async DELETE(c, [, name, uuid]) {
        await blobs.cancel(name!, uuid!);
        return empty(204, {});
      },
    },
    'blob': {
      async HEAD(c, [, name, reference]) {
        const { digest, size } = await blobs.stat(name!, reference!);
        return new Response(null, { status: 200, headers: blobHeaders(digest.value, size) });
      },
      async GET(c, [, name, reference]) {
        const { digest, size } = await blobs.stat(name!, reference!);
        // The store serves it directly (redirect: true): the client sends its Range there.
        const location = await blobs.redirectUrl(digest);
        if (location) return empty(307, { Location: location, 'Docker-Content-Digest': digest.value });
        const range = parseRange(c.req.header('range'), size);
        const out = c.env.outgoing;
        const headers: Record<string, string> = blobHeaders(digest.value, size);
        if (range) {
          headers['Content-Length'] = String(range.end - range.start + 1);
          headers['Content-Range'] = `bytes ${range.start}-${range.end}/${size}`;
        }
        // Stream the object straight to the socket: a blob is never held in memory. Until
        // the headers are out, a failure is an ordinary error response; after, the
        // connection is cut so the client sees a short body, not a wrong one.
        let started = false;
        try {
          await blobs.send(digest, out, range, () => {
            started = true;
            out.writeHead(range ? 206 : 200, headers);
          });
        } catch (err) {
          if (!started) throw err;
          out.destroy();
        }
        return RESPONSE_ALREADY_SENT;
      },
      async DELETE(c, [, name, reference]) {
        await blobs.delete(name!, reference!);
        return empty(202, { 'Docker-Content-Digest': reference! });
      },
    },
    'manifest': {
      async GET(c, [, name, reference]) {
        const m = await manifests.resolve(name!, reference!);
        const bytes = await manifests.content(m);
        return new Response(bytes as unknown as BodyInit, { status: 200, headers: manifestHeaders(m) });
      },
      async HEAD(c, [, name, reference]) {
        return new Response(null, { status: 200, headers: manifestHeaders(await manifests.resolve(name!, reference!)) });
      },
      async PUT(c, [, name, reference]) {
        const body = await readLimited(c.env.incoming, MAX_MANIFEST_BYTES);
        const { digest, subject, tags: applied } = await manifests.put(name!, reference!, c.req.header('content-type'), body, c.req.queries('tag') ?? []);
        const headers = new Headers({ ...API_VERSION_HEADER, 'Content-Length': '0', Location: `/v2/${name}/manifests/${digest}`, 'Docker-Content-Digest': digest });
        if (subject) headers.set('OCI-Subject', subject);
        // One OCI-Tag header per tag a PUT by digest with ?tag= applied (distribution-spec v1.1).
        if (c.req.queries('tag')) for (const tag of applied) headers.append('OCI-Tag', tag);
        return new Response(null, { status: 201, headers });
      },
      async DELETE(c, [, name, reference]) {
        await manifests.delete(name!, reference!);
        return empty(202, {});
      },
    },
    'tags': {
      async GET(c, [, name]) {
        const n = parseN(c.req.query('n'), TAGS_MAX_N);
        const page = await tags.list(name!, c.req.query('last'), n);
        return listResponse({ name, tags: page.items }, page.next && `/v2/${name}/tags/list?n=${n}&last=${encodeURIComponent(page.next)}`);
      },
    },
    'referrers': {
      async GET(c, [, name, digest]) {
        const artifactType = c.req.query('artifactType');
        const { index, filtered, next } = await referrers.list(name!, digest!, artifactType, c.req.query('last'));
        const headers: Record<string, string> = { ...API_VERSION_HEADER, 'Content-Type': 'application/vnd.oci.image.index.v1+json' };
        if (filtered) headers['OCI-Filters-Applied'] = 'artifactType';
        // A list too large for one response goes on at the Link (distribution-spec v1.1 allows it).
        if (next) {
          const query = new URLSearchParams({ ...(artifactType ? { artifactType } : {}), last: next });
          headers.Link = `</v2/${name}/referrers/${digest}?${query}>; rel="next"`;
        }
        return new Response(JSON.stringify(index), { status: 200, headers });
      },
    },
  };

  async function catalog(c: Ctx): Promise<Response> {
    const n = parseN(c.req.query('n'), CATALOG_MAX_N) ?? CATALOG_DEFAULT_N;
    const page = await repositories.list(c.req.query('last'), n);
    return listResponse({ repositories: page.items }, page.next && `/v2/_catalog?n=${n}&last=${encodeURIComponent(page.next)}`);
  }

  /** Dispatches a /v2/<name>/... request; 404 for unknown paths, 405 for unknown methods. */
  async function dispatch(c: Ctx): Promise<Response> {
    const path = rawPath(c.req.url);
    const route = matchRoute(path);
    const handler = route && (route.spec.name === 'catalog' ? { GET: catalog } : handlers[route.spec.name]);
    if (!route || !handler) throw noSuchEndpoint(path);
    const run = route.spec.methods[c.req.method] && handler[c.req.method];
    if (!run) throw methodNotAllowed(c.req.method);
    return run(c, [path, route.name, route.param]);
  }

  return { dispatch };
}

function rawPath(url: string): string {
  const start = url.indexOf('/', url.indexOf('//') + 2);
  const q = url.indexOf('?', start);
  return q < 0 ? url.slice(start) : url.slice(start, q);
}

/** Paths the API does not have: 404, in the spec's error format. */
export function noSuchEndpoint(path: string): RegistryError {
  return new RegistryError('UNSUPPORTED', 'no such endpoint', { path }, { status: 404 });
}

function methodNotAllowed(method: string): RegistryError {
  return new RegistryError('UNSUPPORTED', `method ${method} is not allowed here`, undefined, { status: 405 });
}

function empty(status: number, headers: Record<string, string>): Response {
  return new Response(null, { status, headers: { ...API_VERSION_HEADER, 'Content-Length': '0', ...headers } });
}

function created(location: string, digest: string): Response {
  return empty(201, { Location: location, 'Docker-Content-Digest': digest });
}

function manifestHeaders(m: { digest: string; mediaType: string; size: number }): Record<string, string> {
  return {
    ...API_VERSION_HEADER,
    'Content-Type': m.mediaType,
    'Content-Length': String(m.size),
    'Docker-Content-Digest': m.digest,
    ETag: `"${m.digest}"`,
  };
}

function listResponse(body: object, next: string | undefined): Response {
  const headers: Record<string, string> = { ...API_VERSION_HEADER, 'Content-Type': 'application/json; charset=utf-8' };
  if (next) headers.Link = `<${next}>; rel="next"`;
  return new Response(JSON.stringify(body), { status: 200, headers });
}
