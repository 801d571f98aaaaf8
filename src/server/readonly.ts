// Read-only mode for maintenance (a backup, a migration, a disk move): every /v2 request
// that would change the registry is refused with 405 and the spec's UNSUPPORTED code,
// as the reference registry does with `maintenance: readonly`; pulls, tag lists and the
// catalog go on. The token endpoint stays open: logging in changes nothing stored.

import type { MiddlewareHandler } from 'hono';
import { RegistryError } from '../registry/errors.js';
import { matchRoute, writes } from './route-table.js';
import type { Env } from './routes.js';

const READS = new Set(['GET', 'HEAD', 'OPTIONS']);

export const READ_ONLY_MESSAGE = 'the registry is in read-only mode for maintenance: pushes and deletes are refused, pulls still work';

export function readOnlyMiddleware(): MiddlewareHandler<Env> {
  return async (c, next) => {
    const path = c.req.path;
    // What the route table says writes; an unknown /v2 endpoint by its method.
    const method = matchRoute(path)?.spec.methods[c.req.method];
    const refused = method ? writes(method) : !READS.has(c.req.method);
    if (refused && (path === '/v2' || path.startsWith('/v2/'))) {
      throw new RegistryError('UNSUPPORTED', READ_ONLY_MESSAGE, undefined, { status: 405 });
    }
    await next();
  };
}
