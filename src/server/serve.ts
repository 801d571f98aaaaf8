// Starts the registry's HTTP server and stops it cleanly: on close, new connections are
// refused, requests in flight finish, then the database is closed.

import { createAdaptorServer } from '@hono/node-server';
import type { Server } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { MiddlewareHandler } from 'hono';
import { openRegistry, type Registry, type StorageConfig } from '../registry/registry.js';
import { createApp } from './app.js';
import { authMiddleware } from './auth.js';
import type { AuthConfig } from '../../auth/config.js';
import { AuthService } from '../../auth/service.js';
import { uiRoutes } from '../ui/app.js';
import { createLogger, type Logger } from './logger.js';
import { startMaintenance, type MaintenanceOptions } from './maintenance.js';
import type { Env } from './routes.js';
import { operations, type OperationsOptions } from './operations.js';
import { recordGcRun } from './metrics.js';
import { readTls, reloadTls, type TlsFiles } from './tls.js';
import { enablePullThroughCache, type PullThroughCache, type UpstreamConfig } from '../proxy/index.js';
import { ClientAddresses } from './client-address.js';
import { DEFAULT_CONNECTION_LIMITS, limitConnections, type ConnectionLimits } from './connections.js';

export interface ServerOptions extends OperationsOptions {
  /** `host:port`; port 0 picks a free one. Default 0.0.0.0:5000. */
  listen?: string;
  /** Data directory. Default ./data. */
  data?: string;
  logger?: Logger;
  /**
   * Authentication: an `auth` section (auth/config.ts; mode none, token or basic), or a
   * function that builds the middleware once the registry is open (see src/server/auth.ts).
   */
  auth?: AuthConfig | ((registry: Registry) => MiddlewareHandler<Env> | Promise<MiddlewareHandler<Env>>);
  /** HTTPS with this certificate and key (PEM files); reloadTls() reads them again. */
  tls?: TlsFiles;
  /** Scheduled retention and garbage collection (`gc.interval` and friends). */
  gc?: MaintenanceOptions;
  /** How often blob touches are written (ms); tests shorten it. */
  touchIntervalMs?: number;
  /** Pull-through cache upstreams (the `proxy:` list, src/proxy). */
  proxy?: UpstreamConfig[];
  /** The URL clients reach the registry at (token realm); by default taken from each request. */
  publicUrl?: string;
  /** Reverse proxies (addresses, CIDR ranges) whose forwarded headers are believed (src/server/client-address.ts). */
  trustedProxies?: string[];
  /** Per-address connection cap and request body timeout (src/server/connections.ts). */
  connections?: Partial<ConnectionLimits>;
  /**
   * Remove upload files that no session owns at start-up (default true). Off for the
   * workers of `--workers N`: their primary sweeps once, before any of them serves.
   */
  sweepOrphanUploads?: boolean;
  /**
   * PostgreSQL metadata and/or S3 blobs (config keys `database`, `storage.s3`), shared by
   * replicas. With a shared database the start-up sweep is off: another replica may be
   * writing an upload that has no session yet (scheduled collections still sweep, by age).
   */
  storage?: StorageConfig;
  /** The web UI at `/` (src/ui); on unless false. Off with a custom auth middleware, which it could not sign in with. */
  ui?: boolean;
}

export interface RunningServer {
  url: string;
  port: number;
  host: string;
  registry: Registry;
  server: Server;
  /** The separate metrics listener's URL, when metrics.listen is set. */
  metricsUrl?: string;
  /** The pull-through cache, when `proxy` upstreams are configured. */
  pullThroughCache?: PullThroughCache;
  /** Reads the TLS certificate and key again (SIGHUP); throws and keeps the old ones if they are bad. */
  reloadTls(): void;
  close(): Promise<void>;
}

/** Logs a failure that repeats every second (a full disk) once a minute, with how often it happened since. */
function onceAMinute(log: (err: unknown, repeated: number) => void): (err: unknown) => void {
  let last = 0;
  let repeated = 0;
  return (err) => {
    if (Date.now() - last < 60_000) {
      repeated++;
      return;
    }
    log(err, repeated);
    last = Date.now();
    repeated = 0;
  };
}

export function parseListen(listen: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(listen) ?? /^()()(\d+)$/.exec(listen);
  if (!m) throw new Error(`invalid listen address ${JSON.stringify(listen)}: use host:port`);
  const port = Number(m[3]);
  if (port > 65535) throw new Error(`invalid port in listen address ${JSON.stringify(listen)}`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

/**
 * Sockets' stream buffers. Node's default (16 KiB) makes a blob download wait for the
 * socket to drain after every 1 MiB file read, so disk reads and socket writes never
 * overlap (a 1 GiB pull went from about 0.9 to 1.4 GB/s with larger buffers). 1 MiB
 * pulls as fast as 4 MiB did, and keeps the peak memory of a 2 GiB push at about
 * 125 MB instead of 150 (the readable side buffers uploads too).
 */
const SOCKET_BUFFER = 1 << 20;

/** How long close() lets requests in flight finish before cutting their connections. */
const DRAIN_MS = 10_000;

export async function startServer(options: ServerOptions = {}): Promise<RunningServer> {
  const { host, port } = parseListen(options.listen ?? '0.0.0.0:5000');
  const logger = options.logger ?? createLogger();
  const clients = new ClientAddresses({ publicUrl: options.publicUrl, trustedProxies: options.trustedProxies });
  const registry = await openRegistry(options.data ?? 'data', {
    touchIntervalMs: options.touchIntervalMs,
    readOnly: options.readOnly,
    sweepOrphanUploads: options.sweepOrphanUploads ?? !options.storage?.database,
    storage: options.storage,
    onBackgroundError: onceAMinute((err, repeated) => logger.error({ err, repeated }, 'writing blob touches failed: kept for the next try')),
  });
  const cache = options.proxy?.length ? enablePullThroughCache(registry, options.proxy, logger) : undefined;
  const authConfig = typeof options.auth === 'object' && options.auth.mode !== 'none' ? options.auth : undefined;
  // One service for /v2 and the UI's sign-in: the same users, rules and failed-login throttle.
  const authService = authConfig && AuthService.open(authConfig, registry.users, registry.dataDir);
  const auth =
    typeof options.auth === 'function' ? await options.auth(registry) : authConfig && authMiddleware(registry, authConfig, clients, authService);
  const ops = operations(registry, logger, options);
  const ui =
    options.ui === false || typeof options.auth === 'function'
      ? undefined
      : (app: Parameters<typeof uiRoutes>[0]) => uiRoutes(app, { registry, auth: authService, clients, readOnly: options.readOnly === true });
  const app = createApp({ registry, logger, auth, operations: ops.app, ui });
  const fetch = cache ? cache.wrapFetch(app.fetch) : app.fetch;
  const tls = options.tls;
  const server = (
    tls
      ? createAdaptorServer({ fetch, createServer: createHttpsServer, serverOptions: { ...readTls(tls), highWaterMark: SOCKET_BUFFER } })
      : createAdaptorServer({ fetch, serverOptions: { highWaterMark: SOCKET_BUFFER } })
  ) as Server;
  // Large blobs stream for a long time; never time a request out by its total duration.
  server.requestTimeout = 0;
  server.keepAliveTimeout = 65_000;
  limitConnections(server, clients, { ...DEFAULT_CONNECTION_LIMITS, ...options.connections }, logger);

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const urlHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  let metricsUrl: string | undefined;
  try {
    metricsUrl = await ops.start(parseListen);
  } catch (err) {
    server.close();
    await cache?.close();
    await registry.close();
    throw err;
  }
  const gc = options.gc ?? {};
  const maintenance = startMaintenance(registry, logger, {
    ...gc,
    // A read-only registry collects nothing.
    intervalMs: options.readOnly ? 0 : gc.intervalMs,
    onCollected(report) {
      recordGcRun({ freedBytes: report.bytesFreed, deletedBlobs: report.blobsDeleted });
      gc.onCollected?.(report);
    },
    onFailed(err) {
      recordGcRun({ failed: true });
      gc.onFailed?.(err);
    },
  });
  let closing: Promise<void> | undefined;

  return {
    url: `${tls ? 'https' : 'http'}://${urlHost === '0.0.0.0' ? '127.0.0.1' : urlHost}:${address.port}`,
    port: address.port,
    host: address.address,
    registry,
    server,
    metricsUrl,
    pullThroughCache: cache,
    reloadTls() {
      if (tls) reloadTls(server as unknown as HttpsServer, tls);
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        const force = setTimeout(() => server.closeAllConnections(), DRAIN_MS);
        // A keep-alive connection turns idle only when its response has finished, which
        // can be just after close() was called: keep closing idle ones while draining.
        const sweep = setInterval(() => server.closeIdleConnections(), 50);
        server.close(async () => {
          clearTimeout(force);
          clearInterval(sweep);
          await maintenance.stop();
          await ops.stop();
          await cache?.close();
          await registry.close();
          resolve();
        });
        server.closeIdleConnections();
      });
      return closing;
    },
  };
}
