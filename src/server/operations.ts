// What running the registry for real adds around the /v2 API, assembled in one place
// for startServer: Prometheus metrics (on the main address or a listener of their own),
// /healthz and /readyz, webhook events and their delivery loop, read-only mode.

import { createAdaptorServer } from '@hono/node-server';
import { Hono, type MiddlewareHandler } from 'hono';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { BerthConfig } from '../config/config.js';
import { DEFAULTS } from '../config/config.js';
import type { Registry } from '../registry/registry.js';
import { EventDispatcher, eventRecorder } from './events.js';
import { healthRoutes, type HealthOptions } from './health.js';
import type { Logger } from './logger.js';
import { createMetrics, type Metrics } from './metrics.js';
import { readOnlyMiddleware } from './readonly.js';
import type { Env } from './routes.js';

export interface OperationsOptions {
  readOnly?: boolean;
  metrics?: BerthConfig['metrics'];
  health?: BerthConfig['health'];
  events?: BerthConfig['events'];
}

export interface Operations {
  /** For createApp: middleware and routes on the registry's own address. */
  app: { middleware: MiddlewareHandler<Env>[]; routes(app: Hono<Env>): void };
  metrics: Metrics;
  /** Starts event delivery and the separate metrics listener, if configured; returns its URL. */
  start(parseListen: (listen: string) => { host: string; port: number }): Promise<string | undefined>;
  /** Stops the metrics listener and lets a webhook delivery in flight finish. */
  stop(): Promise<void>;
}

export function operations(registry: Registry, logger: Logger, options: OperationsOptions): Operations {
  const metricsConfig = options.metrics ?? DEFAULTS.metrics;
  const health: HealthOptions = {
    health: registry.health,
    minFreeBytes: (options.health ?? DEFAULTS.health).minFreeBytes,
    readOnly: options.readOnly === true,
  };
  const metrics = createMetrics({ usage: registry.usage, path: metricsConfig.path });
  const dispatcher = new EventDispatcher(registry, options.events ?? DEFAULTS.events, logger, metrics.events);
  const onMainAddress = metricsConfig.enabled && !metricsConfig.listen;

  const watchEvents = eventRecorder(registry, dispatcher, logger);
  // One 'close' listener per response for metrics and events: a streamed blob GET
  // already has many (Node's pipeline), and Node warns past ten.
  const whenDone: MiddlewareHandler<Env> = async (c, next) => {
    const done = [metrics.observe(c), watchEvents(c)];
    c.env.outgoing.once('close', () => {
      for (const d of done) void d?.();
    });
    await next();
  };
  const middleware: MiddlewareHandler<Env>[] = [whenDone];
  if (options.readOnly) middleware.push(readOnlyMiddleware());

  let metricsServer: Server | undefined;
  return {
    metrics,
    app: {
      middleware,
      routes(app) {
        healthRoutes(app, health);
        if (onMainAddress) app.get(metricsConfig.path, () => metrics.respond());
      },
    },
    async start(parseListen) {
      await dispatcher.start();
      if (!metricsConfig.enabled || !metricsConfig.listen) return undefined;
      // Its own address keeps metrics off the public port (a firewall rule, no auth needed).
      const app = new Hono<Env>();
      app.get(metricsConfig.path, () => metrics.respond());
      healthRoutes(app, health);
      metricsServer = createAdaptorServer({ fetch: app.fetch }) as Server;
      const { host, port } = parseListen(metricsConfig.listen);
      await new Promise<void>((resolve, reject) => {
        metricsServer!.once('error', reject);
        metricsServer!.listen(port, host, () => resolve());
      });
      const address = metricsServer.address() as AddressInfo;
      const urlHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
      return `http://${urlHost === '0.0.0.0' ? '127.0.0.1' : urlHost}:${address.port}${metricsConfig.path}`;
    },
    async stop() {
      if (metricsServer) {
        const closed = new Promise<void>((resolve) => metricsServer!.close(() => resolve()));
        metricsServer.closeAllConnections();
        await closed;
      }
      await dispatcher.stop();
    },
  };
}
