// Webhook events: a receiver in the test gets every event once, in the reference
// registry's envelope, also when it was down and the registry restarted in between;
// a receiver that hangs does not slow requests.

import { afterEach, describe, expect, it } from 'vitest';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULTS, type EventsConfig } from '../src/config/config.js';
import { EVENTS_MEDIA_TYPE, type RegistryEvent } from '../src/server/events.js';
import { startServer, type RunningServer } from '../src/server/serve.js';
import { createLogger } from '../src/server/logger.js';
import { pushImage, sha256 } from './helpers/server.js';

interface Receiver {
  url: string;
  events: RegistryEvent[];
  /** Answer with this status (200 = accept). */
  status: number;
  /** Never answer (a hung endpoint). */
  hang: boolean;
  /** Resolves when the sender gives up the first request left hanging. */
  hungClosed: Promise<void>;
  requests: { contentType?: string; authorization?: string }[];
  close(): Promise<void>;
}

async function startReceiver(): Promise<Receiver> {
  const hung: IncomingMessage[] = [];
  let hungClosed = () => {};
  const receiver: Receiver = {
    hungClosed: new Promise<void>((resolve) => (hungClosed = resolve)),
    url: '',
    events: [],
    status: 200,
    hang: false,
    requests: [],
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
  const server: Server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    receiver.requests.push({ contentType: req.headers['content-type'], authorization: req.headers.authorization });
    if (receiver.hang) {
      res.once('close', hungClosed);
      return void hung.push(req);
    }
    if (receiver.status === 200) receiver.events.push(...(JSON.parse(Buffer.concat(chunks).toString()) as { events: RegistryEvent[] }).events);
    res.writeHead(receiver.status).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  receiver.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  return receiver;
}

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function eventsConfig(url: string, extra: Partial<EventsConfig> = {}): EventsConfig {
  return {
    ...DEFAULTS.events,
    backoff: 50,
    maxBackoff: 200,
    endpoints: [{ name: 'test', url, headers: { Authorization: 'Bearer hook-secret' }, timeout: 2000, actions: ['push', 'pull', 'delete', 'mount'], ignoreMediaTypes: [] }],
    ...extra,
  };
}

async function start(data: string, events: EventsConfig): Promise<RunningServer> {
  return startServer({ listen: '127.0.0.1:0', data, logger: createLogger({ level: 'silent' }), events });
}

async function until(check: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function tempData(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-events-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** action, repository, what: the part of an event a test can predict. */
const summary = (e: RegistryEvent) => `${e.action} ${e.target.repository} ${e.target.tag ?? e.target.digest}`;

describe('webhook events', () => {
  it('delivers push, pull, mount and delete once each, in the reference envelope', async () => {
    const receiver = await startReceiver();
    cleanups.push(() => receiver.close());
    const s = await start(await tempData(), eventsConfig(receiver.url));
    cleanups.push(() => s.close());

    const image = await pushImage(s.url, 'hooks/app', 'v1', 'events');
    const layer = sha256(image.layers[0]!);
    await (await fetch(`${s.url}/v2/hooks/app/manifests/v1`)).arrayBuffer();
    await (await fetch(`${s.url}/v2/hooks/app/blobs/${layer}`)).arrayBuffer();
    expect((await fetch(`${s.url}/v2/hooks/app/manifests/v1`, { method: 'HEAD' })).status).toBe(200); // HEAD is not a pull
    expect((await fetch(`${s.url}/v2/hooks/copy/blobs/uploads/?mount=${layer}&from=hooks/app`, { method: 'POST' })).status).toBe(201);
    expect((await fetch(`${s.url}/v2/hooks/app/manifests/${image.digest}`, { method: 'DELETE' })).status).toBe(202);
    expect((await fetch(`${s.url}/v2/hooks/app/manifests/gone`)).status).toBe(404); // failures are not events

    const expected = [
      `push hooks/app ${sha256(image.config)}`,
      `push hooks/app ${layer}`,
      `push hooks/app ${sha256(image.layers[1]!)}`,
      'push hooks/app v1',
      'pull hooks/app v1',
      `pull hooks/app ${layer}`,
      `mount hooks/copy ${layer}`,
      `delete hooks/app ${image.digest}`,
    ];
    await until(() => receiver.events.length >= expected.length, 'events');
    await new Promise((r) => setTimeout(r, 200)); // and no more than these
    expect(receiver.events.map(summary)).toEqual(expected);
    expect(new Set(receiver.events.map((e) => e.id)).size).toBe(expected.length);

    expect(receiver.requests[0]).toEqual({ contentType: EVENTS_MEDIA_TYPE, authorization: 'Bearer hook-secret' });
    const push = receiver.events[3]!;
    expect(push.target).toEqual({
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest: image.digest,
      size: image.manifest.length,
      length: image.manifest.length,
      repository: 'hooks/app',
      url: `${s.url}/v2/hooks/app/manifests/${image.digest}`,
      tag: 'v1',
    });
    expect(push.request).toMatchObject({ method: 'PUT', host: new URL(s.url).host, addr: expect.stringMatching(/^127\.0\.0\.1:\d+$/) });
    expect(push.request.id).toMatch(/^[\w-]+$/);
    expect(push.source.instanceID).toBe(receiver.events[0]!.source.instanceID);
    expect(new Date(push.timestamp).getTime()).toBeGreaterThan(Date.now() - 60_000);
    expect(receiver.events[6]!.target.fromRepository).toBe('hooks/app');
  });

  it('keeps events of a failing endpoint across a restart and delivers each once', async () => {
    const receiver = await startReceiver();
    cleanups.push(() => receiver.close());
    receiver.status = 503;
    const data = await tempData();
    const first = await start(data, eventsConfig(receiver.url));
    await pushImage(first.url, 'restart/app', 'v1', 'before restart');
    await until(() => receiver.requests.length >= 2, 'retries'); // it is trying, and failing
    await first.close();

    receiver.status = 200;
    const second = await start(data, eventsConfig(receiver.url));
    cleanups.push(() => second.close());
    await pushImage(second.url, 'restart/app', 'v2', 'after restart');
    await until(() => receiver.events.length >= 8, 'events after the restart');
    await new Promise((r) => setTimeout(r, 300));
    const pushes = receiver.events.map(summary).filter((s) => s.endsWith(' v1') || s.endsWith(' v2'));
    expect(pushes).toEqual(['push restart/app v1', 'push restart/app v2']); // in order
    expect(receiver.events).toHaveLength(8); // 3 blobs + 1 manifest, twice
    expect(new Set(receiver.events.map((e) => e.id)).size).toBe(8);
  });

  it('a hung endpoint does not hold up requests', async () => {
    const receiver = await startReceiver();
    receiver.hang = true;
    const config = eventsConfig(receiver.url, { batchSize: 1 });
    // Long enough for the pushes below on a loaded machine; a delivery made inside the
    // request would hold the first push until this timeout closes the hung request.
    config.endpoints[0]!.timeout = 20_000;
    const s = await start(await tempData(), config);
    cleanups.push(() => s.close());
    // Runs first: the hung delivery fails at once instead of holding up the shutdown.
    cleanups.push(() => receiver.close());
    const pushes = (async () => {
      for (let i = 0; i < 10; i++) await pushImage(s.url, 'slow/hook', `t${i}`, `hung ${i}`);
      return 'pushed';
    })();
    const first = await Promise.race([pushes, receiver.hungClosed.then(() => 'delivery gave up first')]);
    expect(first).toBe('pushed');
    expect(receiver.requests).toHaveLength(1); // the loop is still waiting on the first delivery
  });

  it('only sends the actions an endpoint asked for', async () => {
    const receiver = await startReceiver();
    cleanups.push(() => receiver.close());
    const config = eventsConfig(receiver.url);
    config.endpoints[0]!.actions = ['delete'];
    const s = await start(await tempData(), config);
    cleanups.push(() => s.close());
    await pushImage(s.url, 'only/deletes', 'v1', 'filtered');
    await (await fetch(`${s.url}/v2/only/deletes/manifests/v1`)).arrayBuffer();
    expect((await fetch(`${s.url}/v2/only/deletes/manifests/v1`, { method: 'DELETE' })).status).toBe(202);
    await until(() => receiver.events.length >= 1, 'the delete');
    await new Promise((r) => setTimeout(r, 200));
    expect(receiver.events.map(summary)).toEqual(['delete only/deletes v1']);
  });
});
