// Starts the registry's HTTP server and stops it cleanly: on close, new connections are
// refused, requests in flight finish, then the database is closed.

import { createAdaptorServer } from '@hono/node-server';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { MiddlewareHandler } from 'hono';
import { openRegistry, type Registry } from '../registry/registry.js';
import { createApp } from './app.js';
import { authMiddleware } from './auth.js';
import type { AuthConfig } from '../../auth/config.js';
import { createLogger, type Logger } from './logger.js';
import { startMaintenance, type MaintenanceOptions } from './maintenance.js';
import type { Env } from './routes.js';

export interface ServerOptions {
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
  /** Scheduled retention and garbage collection (`gc.interval` and friends). */
  gc?: MaintenanceOptions;
  /** How often blob touches are written (ms); tests shorten it. */
  touchIntervalMs?: number;
}

export interface RunningServer {
  url: string;
  port: number;
  host: string;
  registry: Registry;
  server: Server;
  close(): Promise<void>;
}

export function parseListen(listen: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(listen) ?? /^()()(\d+)$/.exec(listen);
  if (!m) throw new Error(`invalid listen address ${JSON.stringify(listen)}: use host:port`);
  const port = Number(m[3]);
  if (port > 65535) throw new Error(`invalid port in listen address ${JSON.stringify(listen)}`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

/** How long close() lets requests in flight finish before cutting their connections. */
const DRAIN_MS = 10_000;

export async function startServer(options: ServerOptions = {}): Promise<RunningServer> {
  const { host, port } = parseListen(options.listen ?? '0.0.0.0:5000');
  const logger = options.logger ?? createLogger();
  const registry = await openRegistry(options.data ?? 'data', { touchIntervalMs: options.touchIntervalMs });
  const auth =
    typeof options.auth === 'function'
      ? await options.auth(registry)
      : options.auth && options.auth.mode !== 'none'
        ? authMiddleware(registry, options.auth)
        : undefined;
  const app = createApp({ registry, logger, auth });
  const server = createAdaptorServer({ fetch: app.fetch }) as Server;
  // Large blobs stream for a long time; never time a request out by its total duration.
  server.requestTimeout = 0;
  server.keepAliveTimeout = 65_000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const urlHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const maintenance = startMaintenance(registry, logger, options.gc ?? {});
  let closing: Promise<void> | undefined;

  return {
    url: `http://${urlHost === '0.0.0.0' ? '127.0.0.1' : urlHost}:${address.port}`,
    port: address.port,
    host: address.address,
    registry,
    server,
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
          registry.close();
          resolve();
        });
        server.closeIdleConnections();
      });
      return closing;
    },
  };
}
