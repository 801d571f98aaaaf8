// Webhook notifications in the reference registry's format: an envelope
// `{"events": [...]}` of media type application/vnd.docker.distribution.events.v1+json,
// POSTed to each configured endpoint, for push, pull, delete and mount of manifests
// and blobs (see the `events` section of the config).
//
// A finished request only writes its events to the outbox in the metadata store
// (registry.events); a background loop delivers them, in order per endpoint, retrying
// with exponential backoff. So a slow or dead endpoint never slows a request, and
// queued events survive a restart. Of all the processes on one data directory, only
// the holder of the 'events' lease delivers; a failure of the store (busy, full) is
// logged and the loop goes on. Delivery is at least once: a receiver that must not act twice dedupes on
// the event `id` (a crash between a 2xx and the queue update resends a batch).

import type { Context } from 'hono';
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { EventAction, EventEndpointConfig, EventsConfig } from '../config/config.js';
import type { Registry } from '../registry/registry.js';
import type { EventOutbox, QueuedEvent } from '../registry/events.js';
import { newHolder } from '../registry/leases.js';
import type { Logger } from './logger.js';
import type { EventMetrics } from './metrics.js';
import { looksLikeDigest } from '../oci/grammar.js';
import { matchRoute } from './route-table.js';
import type { Env } from './routes.js';

export const EVENTS_MEDIA_TYPE = 'application/vnd.docker.distribution.events.v1+json';

export interface EventTarget {
  mediaType?: string;
  digest?: string;
  size?: number;
  /** The same as size: the reference registry sends both. */
  length?: number;
  repository: string;
  fromRepository?: string;
  url?: string;
  tag?: string;
}

export interface RegistryEvent {
  id: string;
  timestamp: string;
  action: EventAction;
  target: EventTarget;
  request: { id: string; addr: string; host: string; method: string; useragent: string };
  actor: { name?: string };
  source: { addr: string; instanceID: string };
}

/** With nothing queued, look again this often anyway (another process may share the database). */
const IDLE_POLL_MS = 1000;
/** The delivery lease: renewed on every pass of the loop, so it must outlast a pass. */
const DELIVERY_LEASE_MS = 60_000;
/** After a failure of the store, wait this long before the next pass. */
const STORE_RETRY_MS = 1000;

export class EventDispatcher {
  private readonly queue: EventOutbox;
  private readonly holder = newHolder();
  private leaseUntil = 0;
  private readonly readOnly: boolean;
  private readonly endpoints: Map<string, EventEndpointConfig>;
  private stopped = false;
  private running: Promise<void> | undefined;
  private wakeUp: (() => void) | undefined;
  private woken = false;

  constructor(
    registry: Registry,
    private readonly config: EventsConfig,
    private readonly logger: Logger,
    private readonly metrics?: EventMetrics,
  ) {
    this.queue = registry.events;
    this.readOnly = registry.readOnly;
    this.endpoints = new Map(config.endpoints.map((e) => [e.name, e]));
    if (metrics) metrics.queued = () => this.queue.count();
  }

  /** Whether any endpoint is configured: without one, requests are not even looked at. */
  get active(): boolean {
    return this.endpoints.size > 0 && !this.readOnly;
  }

  /**
   * Starts the delivery loop; events of endpoints no longer configured are dropped first.
   * A read-only registry delivers nothing (a delivery updates the queue) and queues nothing.
   */
  async start(): Promise<void> {
    if (this.readOnly) return;
    try {
      const dropped = await this.queue.dropEndpointsExcept([...this.endpoints.keys()]);
      if (dropped) this.logger.warn({ dropped }, 'dropped queued events of webhook endpoints no longer configured');
    } catch (err) {
      // A full or busy database must not keep the registry from starting: the next start tries again.
      this.logger.error({ err }, 'could not drop the queued events of webhook endpoints no longer configured');
    }
    if (this.endpoints.size === 0) return;
    this.running = this.loop();
  }

  /** Lets a delivery in flight finish (bounded by the endpoint's timeout), then stops. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake();
    await this.running;
    await this.queue.releaseLease('events', this.holder).catch(() => undefined);
  }

  /** Queues an event for every endpoint that wants it. Called when a request has finished. */
  async record(action: EventAction, target: EventTarget, request: RegistryEvent['request'], source: RegistryEvent['source']): Promise<void> {
    const wanting = [...this.endpoints.values()]
      .filter((e) => e.actions.includes(action) && !(target.mediaType && e.ignoreMediaTypes.includes(target.mediaType)))
      .map((e) => e.name);
    if (wanting.length === 0) return;
    const event: RegistryEvent = { id: randomUUID(), timestamp: new Date().toISOString(), action, target, request, actor: {}, source };
    const payload = JSON.stringify(event);
    await this.queue.enqueue(wanting.map((endpoint) => ({ endpoint, eventId: event.id, payload })));
    this.wake();
  }

  private wake(): void {
    this.woken = true;
    this.wakeUp?.();
  }

  /** Runs until stop(); never rejects: a failed pass is logged and the next one comes later. */
  private async loop(): Promise<void> {
    while (!this.stopped) {
      this.woken = false;
      let nextAt: number;
      try {
        nextAt = (await this.haveLease()) ? await this.deliverDue() : Date.now() + IDLE_POLL_MS;
      } catch (err) {
        this.logger.error({ err }, 'webhook delivery failed to read or update its queue; trying again');
        nextAt = Date.now() + STORE_RETRY_MS;
        this.woken = false;
      }
      if (this.stopped) break;
      if (this.woken) continue;
      const wait = Math.min(Math.max(nextAt - Date.now(), 0), IDLE_POLL_MS);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, wait);
        this.wakeUp = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wakeUp = undefined;
    }
  }

  /** Whether this process delivers: takes or renews the 'events' lease once half of it is used. */
  private async haveLease(): Promise<boolean> {
    if (Date.now() < this.leaseUntil - DELIVERY_LEASE_MS / 2) return true;
    const until = Date.now() + DELIVERY_LEASE_MS;
    this.leaseUntil = (await this.queue.lease('events', this.holder, DELIVERY_LEASE_MS)) ? until : 0;
    return this.leaseUntil > 0;
  }

  /** Sends one batch to every endpoint whose oldest event is due; returns when to look again. */
  private async deliverDue(): Promise<number> {
    const now = Date.now();
    let nextAt = now + IDLE_POLL_MS;
    const sends: Promise<void>[] = [];
    for (const name of await this.queue.endpoints()) {
      const endpoint = this.endpoints.get(name);
      if (!endpoint) continue;
      const batch = await this.queue.head(name, this.config.batchSize);
      if (batch.length === 0) continue;
      // Only the oldest event's time counts: later ones wait behind it, keeping the order.
      if (batch[0]!.nextAttemptAt > now) {
        nextAt = Math.min(nextAt, batch[0]!.nextAttemptAt);
        continue;
      }
      nextAt = now; // delivered or failed, look again at once: more may be queued
      sends.push(this.send(endpoint, batch));
    }
    await Promise.all(sends);
    return nextAt;
  }

  private async send(endpoint: EventEndpointConfig, batch: QueuedEvent[]): Promise<void> {
    const body = `{"events":[${batch.map((e) => e.payload).join(',')}]}`;
    let error: string | undefined;
    try {
      const res = await fetch(endpoint.url, {
        method: 'POST',
        headers: { ...endpoint.headers, 'Content-Type': EVENTS_MEDIA_TYPE },
        body,
        signal: AbortSignal.timeout(endpoint.timeout),
        redirect: 'manual',
      });
      await res.arrayBuffer().catch(() => undefined);
      if (res.status < 200 || res.status > 299) error = `HTTP ${res.status}`;
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause?.code;
      error = cause ?? (err as Error).message;
    }
    const seqs = batch.map((e) => e.seq);
    if (error === undefined) {
      await this.queue.remove(seqs);
      this.metrics?.delivered.inc({ endpoint: endpoint.name }, batch.length);
      return;
    }
    this.metrics?.failed.inc({ endpoint: endpoint.name });
    const attempts = batch[0]!.attempts + 1;
    const { maxAttempts, backoff, maxBackoff } = this.config;
    const giveUp = maxAttempts > 0 ? batch.filter((e) => e.attempts + 1 >= maxAttempts) : [];
    if (giveUp.length) {
      await this.queue.remove(giveUp.map((e) => e.seq));
      this.metrics?.dropped.inc({ endpoint: endpoint.name }, giveUp.length);
      this.logger.error({ endpoint: endpoint.name, events: giveUp.map((e) => e.eventId), error }, 'webhook events dropped after too many failed deliveries');
    }
    const retry = seqs.filter((s) => !giveUp.some((e) => e.seq === s));
    const delay = Math.min(backoff * 2 ** (attempts - 1), maxBackoff);
    await this.queue.failed(retry, Date.now() + delay, error);
    this.logger.warn({ endpoint: endpoint.name, events: batch.length, attempts, retryInMs: delay, error }, 'webhook delivery failed');
  }
}

/**
 * Turns finished requests into events: `watch(c)` returns what to run once the response
 * is done, so the client has its answer before anything is written to the queue.
 */
export function eventRecorder(registry: Registry, dispatcher: EventDispatcher, logger: Logger): (c: Context<Env>) => (() => Promise<void>) | undefined {
  const instanceID = randomUUID();
  return (c) => {
    const method = c.req.method;
    if (!dispatcher.active || method === 'HEAD' || method === 'OPTIONS' || !c.req.path.startsWith('/v2/')) return undefined;
    const out = c.env.outgoing;
    return async () => {
      if (out.statusCode < 200 || out.statusCode > 202) return;
      try {
        const req = c.env.incoming;
        const host = c.req.header('host') ?? `${req.socket.localAddress}:${req.socket.localPort}`;
        const scheme = 'encrypted' in req.socket ? 'https' : 'http';
        const request = {
          id: c.get('requestId'),
          addr: `${req.socket.remoteAddress}:${req.socket.remotePort}`,
          host,
          method,
          useragent: c.req.header('user-agent') ?? '',
        };
        const source = { addr: `${hostname()}:${req.socket.localPort}`, instanceID };
        const header = (name: string) => {
          const v = out.getHeader(name);
          return v === undefined ? undefined : String(v);
        };
        const url = (repo: string, kind: string, ref: string) => `${scheme}://${host}/v2/${repo}/${kind}/${ref}`;
        for (const [action, target] of await eventsOf(c.req.path, method, out.statusCode, header, (q) => c.req.queries(q), registry, url)) {
          await dispatcher.record(action, target, request, source);
        }
      } catch (err) {
        logger.error({ requestId: c.get('requestId'), err }, 'could not queue webhook event');
      }
    };
  };
}

/** The events of one successful request: its action and target(s), as the route table (route-table.ts) names them. */
async function eventsOf(
  path: string,
  method: string,
  status: number,
  header: (name: string) => string | undefined,
  queries: (name: string) => string[] | undefined,
  registry: Registry,
  url: (repo: string, kind: string, ref: string) => string,
): Promise<[EventAction, EventTarget][]> {
  const route = matchRoute(path);
  const action = route?.spec.methods[method]?.event;
  if (!route || !action || route.name === undefined) return [];
  const repository = route.name;
  const reference = route.param ?? '';
  switch (route.spec.name) {
    case 'manifest': {
      if (action === 'delete') return [['delete', looksLikeDigest(reference) ? { digest: reference, repository } : { tag: reference, repository }]];
      const digest = header('docker-content-digest')!;
      if (action === 'pull') {
        const size = Number(header('content-length'));
        const tag = looksLikeDigest(reference) ? undefined : reference;
        return [['pull', { mediaType: header('content-type'), digest, size, length: size, repository, url: url(repository, 'manifests', digest), tag }]];
      }
      const m = await registry.manifests.resolve(repository, digest);
      const base = { mediaType: m.mediaType, digest, size: m.size, length: m.size, repository, url: url(repository, 'manifests', digest) };
      const tags = [...(looksLikeDigest(reference) ? [] : [reference]), ...(queries('tag') ?? [])];
      return tags.length ? tags.map((tag) => ['push', { ...base, tag }]) : [['push', base]];
    }
    case 'upload-start':
    case 'upload': {
      // Only a request that ended the upload (201) pushed or mounted a blob.
      if (status !== 201) return [];
      const digest = header('docker-content-digest')!;
      const { size } = await registry.blobs.stat(repository, digest);
      const target = { mediaType: 'application/octet-stream', digest, size, length: size, repository, url: url(repository, 'blobs', digest) };
      const mount = route.spec.name === 'upload-start' ? queries('mount')?.[0] : undefined;
      if (mount) return [['mount', { ...target, fromRepository: queries('from')?.[0] }]];
      return [['push', target]];
    }
    case 'blob': {
      if (action === 'delete') return [['delete', { digest: reference, repository }]];
      const size = Number(header('content-length'));
      return [['pull', { mediaType: 'application/octet-stream', digest: reference, size, length: size, repository, url: url(repository, 'blobs', reference) }]];
    }
    default:
      return [];
  }
}
