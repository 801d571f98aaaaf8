// The Hono application: request ids and access logs, the /v2 API, and error handling
// that answers with the spec's JSON and never leaks a path or a stack.

import { Hono, type MiddlewareHandler } from 'hono';
import { randomUUID } from 'node:crypto';
import { RegistryError } from '../registry/errors.js';
import type { Registry } from '../registry/registry.js';
import { API_VERSION_HEADER, errorResponse } from './http.js';
import type { Logger } from './logger.js';
import { noSuchEndpoint, v2Routes, type Env } from './routes.js';

export interface AppOptions {
  registry: Registry;
  logger: Logger;
  /** Installed before the /v2 routes when authentication is on. */
  auth?: MiddlewareHandler<Env>;
  /** Operations (src/server/operations.ts): middleware run after the request id and before auth, and routes outside /v2. */
  operations?: { middleware: MiddlewareHandler<Env>[]; routes(app: Hono<Env>): void };
  /** The web UI's routes (src/ui), outside /v2; absent when it is off. */
  ui?: (app: Hono<Env>) => void;
}

export function createApp({ registry, logger, auth, operations, ui }: AppOptions): Hono<Env> {
  const app = new Hono<Env>();
  const { dispatch } = v2Routes(registry);

  app.use('*', async (c, next) => {
    const incoming = c.req.header('x-request-id');
    const requestId = incoming && /^[\w.-]{1,128}$/.test(incoming) ? incoming : randomUUID();
    c.set('requestId', requestId);
    const started = performance.now();
    const out = c.env.outgoing;
    out.setHeader('X-Request-Id', requestId);
    // Logged when the response is really done, so streamed bodies count in the time.
    out.once('close', () => {
      logger.info({
        requestId,
        method: c.req.method,
        path: c.req.path,
        status: out.statusCode,
        ms: Math.round((performance.now() - started) * 10) / 10,
        ...(out.writableFinished ? {} : { aborted: true }),
      });
    });
    await next();
  });

  app.onError((err, c) => {
    if (err instanceof RegistryError) return errorResponse(err, c.req.method);
    if (isStorageFull(err)) {
      // The failed write was undone (an upload is cut back to its acknowledged offset).
      logger.error({ requestId: c.get('requestId'), err }, 'storage full');
      const full = new RegistryError('UNKNOWN', 'no space left on the registry\'s storage: nothing was stored', { requestId: c.get('requestId') }, { status: 507 });
      return errorResponse(full, c.req.method);
    }
    if ((err as { code?: unknown }).code === 'EUNAVAILABLE') {
      // A storage service (PostgreSQL, S3) does not answer (storage/ports.ts StoreUnavailableError):
      // the client may retry. Which service goes out; its address and error stay in the log.
      logger.error({ requestId: c.get('requestId'), err }, 'storage unavailable');
      const what = err.message.split(': ')[0]!;
      const down = new RegistryError('UNAVAILABLE', `${what}: try again shortly`, { requestId: c.get('requestId') }, { headers: { 'Retry-After': '5' } });
      return errorResponse(down, c.req.method);
    }
    logger.error({ requestId: c.get('requestId'), err }, 'internal error');
    return errorResponse(new RegistryError('UNKNOWN', 'internal server error', { requestId: c.get('requestId') }), c.req.method);
  });

  for (const m of operations?.middleware ?? []) app.use('*', m);
  operations?.routes(app);
  if (auth) app.use('*', auth);

  const ping = () => new Response('{}', { status: 200, headers: { ...API_VERSION_HEADER, 'Content-Type': 'application/json' } });
  app.get('/v2', ping);
  app.get('/v2/', ping);
  // Storage usage per repository, for admins (the auth check asks for registry:catalog:*).
  app.get('/v2/_berth/usage', async (c) => c.json(await registry.usage.report()));
  app.all('/v2/*', (c) => dispatch(c));
  ui?.(app);

  app.notFound((c) => errorResponse(noSuchEndpoint(c.req.path), c.req.method));
  return app;
}

/** A write refused for lack of space (ENOSPC) or over a quota (EDQUOT), or SQLite's SQLITE_FULL. */
function isStorageFull(err: unknown): boolean {
  const code = (err as { code?: unknown })?.code;
  return code === 'ENOSPC' || code === 'EDQUOT' || code === 'SQLITE_FULL';
}
