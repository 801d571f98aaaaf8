// Prometheus metrics (prom-client). Each server has its own registry of metrics, so
// several servers in one process (tests) do not mix their numbers; garbage collection
// counters are process-wide and shown by every server (see recordGcRun).
//
//   berth_http_requests_total{route,method,status}            requests answered
//   berth_http_request_duration_seconds{route,method,status}  latency histogram, until the body is sent
//   berth_http_received_bytes_total{route} / _sent_bytes_total{route}   bytes on the wire
//   berth_uploads_in_flight                                   blob upload requests streaming now
//   berth_repositories, berth_blobs, berth_stored_bytes, berth_upload_sessions   read at scrape time
//   berth_gc_runs_total{result}, berth_gc_freed_bytes_total, berth_gc_deleted_blobs_total
//   berth_events_queued, berth_events_delivered_total{endpoint}, berth_events_failed_deliveries_total{endpoint},
//   berth_events_dropped_total{endpoint}
// plus prom-client's process metrics (CPU, memory, event loop lag, file descriptors).
//
// `route` is the API endpoint's template, never the raw path: repository names would
// make one series per repository and tag.

import type { Context } from 'hono';
import type { Socket } from 'node:net';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { UsageService } from '../registry/usage.js';
import type { Env } from './routes.js';
import { matchRoute } from './route-table.js';
import { allProxyMetrics } from '../proxy/metrics.js';

type StorageCounts = Awaited<ReturnType<UsageService['counts']>>;

const gcRuns = new Counter({ name: 'berth_gc_runs_total', help: 'Garbage collection runs, by result (ok or error).', labelNames: ['result'] as const, registers: [] });
const gcFreedBytes = new Counter({ name: 'berth_gc_freed_bytes_total', help: 'Bytes of blob files deleted by garbage collection.', registers: [] });
const gcDeletedBlobs = new Counter({ name: 'berth_gc_deleted_blobs_total', help: 'Blobs deleted by garbage collection.', registers: [] });

/**
 * Garbage collection reports each run here (from the server's scheduler or `berth gc`
 * in the same process): `recordGcRun({ freedBytes, deletedBlobs })`, or `{ failed: true }`.
 */
export function recordGcRun(run: { freedBytes?: number; deletedBlobs?: number; failed?: boolean }): void {
  gcRuns.inc({ result: run.failed ? 'error' : 'ok' });
  if (run.freedBytes) gcFreedBytes.inc(run.freedBytes);
  if (run.deletedBlobs) gcDeletedBlobs.inc(run.deletedBlobs);
}

/** Paths outside the /v2 route table (route-table.ts) that get a label of their own. */
const OTHER_ROUTES = new Set(['/auth/token', '/healthz', '/readyz']);

/** The endpoint template of a path, `other` for anything unknown. */
export function routeOf(path: string, metricsPath?: string): string {
  if (path === metricsPath || OTHER_ROUTES.has(path)) return path;
  return matchRoute(path)?.spec.template ?? 'other';
}

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

export interface EventMetrics {
  delivered: Counter<'endpoint'>;
  failed: Counter<'endpoint'>;
  dropped: Counter<'endpoint'>;
  /** How to count the events waiting for delivery; set by the delivery loop. */
  queued: (() => Promise<number>) | undefined;
}

export interface Metrics {
  registry: Registry;
  /** Starts measuring a request; the returned function records it once the response is done. */
  observe(c: Context<Env>): () => void;
  events: EventMetrics;
  /** The /metrics answer. */
  respond(): Promise<Response>;
}

export function createMetrics({ usage, path }: { usage: UsageService; path?: string }): Metrics {
  const registry = new Registry();
  const registers = [registry];
  collectDefaultMetrics({ register: registry, prefix: 'berth_' });
  for (const m of [gcRuns, gcFreedBytes, gcDeletedBlobs, ...allProxyMetrics]) registry.registerMetric(m);

  const labelNames = ['route', 'method', 'status'] as const;
  const requests = new Counter({ name: 'berth_http_requests_total', help: 'HTTP requests answered.', labelNames, registers });
  const duration = new Histogram({
    name: 'berth_http_request_duration_seconds',
    help: 'Time from request to the last byte of the response.',
    labelNames,
    // Manifests answer in milliseconds; large blob uploads take minutes.
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    registers,
  });
  const received = new Counter({ name: 'berth_http_received_bytes_total', help: 'Bytes received from clients (headers and bodies).', labelNames: ['route'] as const, registers });
  const sent = new Counter({ name: 'berth_http_sent_bytes_total', help: 'Bytes sent to clients (headers and bodies).', labelNames: ['route'] as const, registers });
  const uploads = new Gauge({ name: 'berth_uploads_in_flight', help: 'Blob upload requests whose body is being received now.', registers });

  // Storage gauges are read from the database when Prometheus scrapes, never on a request.
  let snapshot: Promise<StorageCounts> | undefined;
  const fromSnapshot = (pick: (s: StorageCounts) => number) =>
    async function (this: Gauge) {
      snapshot ??= usage.counts();
      this.set(pick(await snapshot));
    };
  new Gauge({ name: 'berth_repositories', help: 'Repositories stored.', registers, collect: fromSnapshot((s) => s.repositories) });
  new Gauge({ name: 'berth_blobs', help: 'Blobs stored (layers, configs and manifests, each once).', registers, collect: fromSnapshot((s) => s.blobs) });
  new Gauge({ name: 'berth_stored_bytes', help: 'Bytes of all stored blobs, each counted once.', registers, collect: fromSnapshot((s) => s.bytes) });
  new Gauge({ name: 'berth_upload_sessions', help: 'Upload sessions open (started, not finished or cancelled).', registers, collect: fromSnapshot((s) => s.uploadSessions) });

  const events: EventMetrics = {
    delivered: new Counter({ name: 'berth_events_delivered_total', help: 'Events delivered to a webhook endpoint.', labelNames: ['endpoint'] as const, registers }),
    failed: new Counter({ name: 'berth_events_failed_deliveries_total', help: 'Failed webhook deliveries (each retried later).', labelNames: ['endpoint'] as const, registers }),
    dropped: new Counter({ name: 'berth_events_dropped_total', help: 'Events given up after events.maxAttempts failures.', labelNames: ['endpoint'] as const, registers }),
    queued: undefined,
  };
  new Gauge({
    name: 'berth_events_queued',
    help: 'Events waiting for delivery to webhook endpoints.',
    registers,
    async collect() {
      this.set((await events.queued?.()) ?? 0);
    },
  });

  // Socket byte counters are cumulative over a keep-alive connection: count the growth
  // since the last response on the same socket.
  const counted = new WeakMap<Socket, { read: number; written: number }>();

  const observe = (c: Context<Env>) => {
    const route = routeOf(c.req.path, path);
    const method = METHODS.has(c.req.method) ? c.req.method : 'other';
    const isUpload = route.startsWith('/v2/{name}/blobs/uploads') && method !== 'GET' && method !== 'DELETE';
    if (isUpload) uploads.inc();
    const end = duration.startTimer({ route, method });
    const out = c.env.outgoing;
    return () => {
      if (isUpload) uploads.dec();
      const status = String(out.statusCode);
      end({ status });
      requests.inc({ route, method, status });
      // Gone when the connection was destroyed before the response finished.
      const socket = c.env.incoming.socket as Socket | null;
      if (!socket) return;
      const last = counted.get(socket) ?? { read: 0, written: 0 };
      received.inc({ route }, socket.bytesRead - last.read);
      sent.inc({ route }, socket.bytesWritten - last.written);
      counted.set(socket, { read: socket.bytesRead, written: socket.bytesWritten });
    };
  };

  return {
    registry,
    observe,
    events,
    async respond() {
      snapshot = undefined;
      const body = await registry.metrics();
      return new Response(body, { status: 200, headers: { 'Content-Type': registry.contentType } });
    },
  };
}
