// The /v2 API's routes, declared once (as distribution's registry/api/v2/routes.go):
// name, path pattern, metrics label, and per method the access it needs and the
// webhook event it makes. The dispatcher (routes.ts), metrics labels (metrics.ts),
// read-only mode (readonly.ts) and webhook events (events.ts) all read this table.
//
// Repository names contain slashes, so the pattern's greedy `(.+)` takes everything
// before the last /blobs/, /manifests/, /tags/ or /referrers/ segment as the name.

import type { EventAction } from '../config/config.js';

export type RouteName = 'base' | 'catalog' | 'usage' | 'upload-start' | 'upload' | 'blob' | 'manifest' | 'tags' | 'referrers';

/** What a request needs: nothing but a valid identity, or an action on its repository, or the registry's catalog. */
export type Access = 'identity' | 'pull' | 'push' | 'delete' | 'catalog';

export interface RouteMethod {
  access: Access;
  /** The webhook event a successful request makes. */
  event?: EventAction;
}

export interface RouteSpec {
  name: RouteName;
  /** The endpoint's template: the `route` label of the metrics. */
  template: string;
  /** Matched against the raw path; group 1 is the repository, group 2 the reference, digest or upload id. */
  pattern: RegExp;
  methods: Partial<Record<string, RouteMethod>>;
}

export const ROUTES: readonly RouteSpec[] = [
  { name: 'base', template: '/v2/', pattern: /^\/v2\/?$/, methods: { GET: { access: 'identity' }, HEAD: { access: 'identity' } } },
  { name: 'catalog', template: '/v2/_catalog', pattern: /^\/v2\/_catalog$/, methods: { GET: { access: 'catalog' } } },
  { name: 'usage', template: '/v2/_berth/usage', pattern: /^\/v2\/_berth\/usage$/, methods: { GET: { access: 'catalog' } } },
  {
    name: 'upload-start',
    template: '/v2/{name}/blobs/uploads/',
    pattern: /^\/v2\/(.+)\/blobs\/uploads\/?$/,
    // A monolithic POST and a mount end a push (or a mount) at once.
    methods: { POST: { access: 'push', event: 'push' } },
  },
  {
    name: 'upload',
    template: '/v2/{name}/blobs/uploads/{uuid}',
    pattern: /^\/v2\/(.+)\/blobs\/uploads\/([^/]+)$/,
    methods: { GET: { access: 'pull' }, PATCH: { access: 'push' }, PUT: { access: 'push', event: 'push' }, DELETE: { access: 'delete' } },
  },
  {
    name: 'blob',
    template: '/v2/{name}/blobs/{digest}',
    pattern: /^\/v2\/(.+)\/blobs\/([^/]+)$/,
    methods: { GET: { access: 'pull', event: 'pull' }, HEAD: { access: 'pull' }, DELETE: { access: 'delete', event: 'delete' } },
  },
  {
    name: 'manifest',
    template: '/v2/{name}/manifests/{reference}',
    pattern: /^\/v2\/(.+)\/manifests\/([^/]+)$/,
    methods: {
      GET: { access: 'pull', event: 'pull' },
      HEAD: { access: 'pull' },
      PUT: { access: 'push', event: 'push' },
      DELETE: { access: 'delete', event: 'delete' },
    },
  },
  { name: 'tags', template: '/v2/{name}/tags/list', pattern: /^\/v2\/(.+)\/tags\/list$/, methods: { GET: { access: 'pull' } } },
  { name: 'referrers', template: '/v2/{name}/referrers/{digest}', pattern: /^\/v2\/(.+)\/referrers\/([^/]+)$/, methods: { GET: { access: 'pull' } } },
];

export interface RouteMatch {
  spec: RouteSpec;
  /** The repository name, when the route has one. */
  name?: string;
  /** The reference, digest or upload id, when the route has one. */
  param?: string;
}

/** The route of a raw /v2 path (not decoded), or undefined. The first match wins, in table order. */
export function matchRoute(path: string): RouteMatch | undefined {
  for (const spec of ROUTES) {
    const m = spec.pattern.exec(path);
    if (m) return { spec, name: m[1], param: m[2] };
  }
  return undefined;
}

/** Whether a method on a route changes the registry (refused in read-only mode). */
export function writes(method: RouteMethod): boolean {
  return method.access === 'push' || method.access === 'delete';
}
