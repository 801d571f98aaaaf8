// Prometheus metrics that move when requests are served: request counts by route
// template, latency histograms, bytes in and out, uploads in flight, what is stored,
// garbage collection runs; and metrics on a listener of their own.

import { afterEach, describe, expect, it } from 'vitest';
import { request } from 'node:http';
import { routeOf } from '../src/server/metrics.js';
import { pushBlob, pushImage, sha256, startTestServer, type TestServer } from './helpers/server.js';

const servers: TestServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.destroy();
});

async function server(options: Parameters<typeof startTestServer>[0] = {}): Promise<TestServer> {
  const s = await startTestServer(options);
  servers.push(s);
  return s;
}

/** Samples of the Prometheus text format: `name{labels}` -> value. */
async function scrape(url: string): Promise<Map<string, number>> {
  const res = await fetch(url);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  const samples = new Map<string, number>();
  for (const line of (await res.text()).split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*(?:\{.*\})?) (\S+)$/.exec(line);
    if (m) samples.set(m[1]!, Number(m[2]));
  }
  return samples;
}

const value = (samples: Map<string, number>, key: string) => samples.get(key) ?? 0;

describe('metrics', () => {
  it('move with the requests served and what is stored', async () => {
    const s = await server();
    const metrics = `${s.url}/metrics`;
    const before = await scrape(metrics);
    expect(value(before, 'berth_blobs')).toBe(0);
    expect(value(before, 'berth_repositories')).toBe(0);

    const image = await pushImage(s.url, 'team/app', 'v1', 'metrics');
    const layerBytes = image.layers.reduce((n, l) => n + l.length, 0);
    const pulled = await fetch(`${s.url}/v2/team/app/blobs/${sha256(image.layers[0]!)}`);
    await pulled.arrayBuffer();
    expect((await fetch(`${s.url}/v2/team/app/manifests/nope`)).status).toBe(404);

    const after = await scrape(metrics);
    const put = 'berth_http_requests_total{route="/v2/{name}/manifests/{reference}",method="PUT",status="201"}';
    expect(value(after, put) - value(before, put)).toBe(1);
    const notFound = 'berth_http_requests_total{route="/v2/{name}/manifests/{reference}",method="GET",status="404"}';
    expect(value(after, notFound)).toBe(1);
    const blobPosts = 'berth_http_requests_total{route="/v2/{name}/blobs/uploads/",method="POST",status="201"}';
    expect(value(after, blobPosts)).toBe(3); // config and two layers
    // The histogram counted the same requests.
    expect(value(after, 'berth_http_request_duration_seconds_count{route="/v2/{name}/blobs/uploads/",method="POST",status="201"}')).toBe(3);
    expect(value(after, 'berth_http_request_duration_seconds_bucket{le="+Inf",route="/v2/{name}/blobs/uploads/",method="POST",status="201"}')).toBe(3);
    // Bytes on the wire: at least the bodies, each way.
    expect(value(after, 'berth_http_received_bytes_total{route="/v2/{name}/blobs/uploads/"}')).toBeGreaterThan(layerBytes + image.config.length);
    expect(value(after, 'berth_http_sent_bytes_total{route="/v2/{name}/blobs/{digest}"}')).toBeGreaterThan(image.layers[0]!.length);
    // Stored: config, two layers and the manifest, in one repository.
    expect(value(after, 'berth_blobs')).toBe(4);
    expect(value(after, 'berth_repositories')).toBe(1);
    expect(value(after, 'berth_stored_bytes')).toBe(layerBytes + image.config.length + image.manifest.length);
    // Repository names never become label values.
    for (const key of after.keys()) expect(key).not.toContain('team/app');
    // Process metrics come along.
    expect(value(after, 'berth_process_resident_memory_bytes')).toBeGreaterThan(0);
  });

  it('count uploads in flight while a body is streaming', async () => {
    const s = await server();
    const data = Buffer.alloc(64 * 1024, 'u');
    let finish!: () => void;
    const status = new Promise<number>((resolve, reject) => {
      const { port } = new URL(s.url);
      const req = request(
        { host: '127.0.0.1', port, method: 'POST', path: `/v2/slow/blobs/uploads/?digest=${sha256(data)}`, headers: { 'Content-Length': data.length } },
        (res) => {
          res.resume();
          resolve(res.statusCode!);
        },
      );
      req.on('error', reject);
      req.write(data.subarray(0, 1000));
      finish = () => req.end(data.subarray(1000));
    });
    await new Promise((r) => setTimeout(r, 100));
    expect(value(await scrape(`${s.url}/metrics`), 'berth_uploads_in_flight')).toBe(1);
    finish();
    expect(await status).toBe(201);
    const after = await scrape(`${s.url}/metrics`);
    expect(value(after, 'berth_uploads_in_flight')).toBe(0);
    expect(value(after, 'berth_stored_bytes')).toBe(data.length);
  });

  it('count garbage collection runs and freed bytes', async () => {
    const s = await server({ gc: { intervalMs: 50, graceMs: 0, settleMs: 0 }, touchIntervalMs: 10 });
    const before = await scrape(`${s.url}/metrics`);
    const orphan = Buffer.alloc(1234, 'o');
    await pushBlob(s.url, 'gc/orphan', orphan); // linked, but no manifest holds it
    let after = before;
    const delta = (key: string) => value(after, key) - value(before, key);
    for (let i = 0; i < 200 && delta('berth_gc_deleted_blobs_total') < 1; i++) {
      await new Promise((r) => setTimeout(r, 25)); // the next scheduled collection
      after = await scrape(`${s.url}/metrics`);
    }
    expect(delta('berth_gc_runs_total{result="ok"}')).toBeGreaterThanOrEqual(1);
    expect(delta('berth_gc_runs_total{result="error"}')).toBe(0);
    expect(delta('berth_gc_freed_bytes_total')).toBe(orphan.length);
    expect(delta('berth_gc_deleted_blobs_total')).toBe(1);
    expect((await fetch(`${s.url}/v2/gc/orphan/blobs/${sha256(orphan)}`, { method: 'HEAD' })).status).toBe(404);
  });

  it('can live on their own address, off the registry port, or be turned off', async () => {
    const s = await server({ metrics: { enabled: true, path: '/prom', listen: '127.0.0.1:0' } });
    expect(s.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/prom$/);
    expect((await fetch(`${s.url}/prom`)).status).toBe(404);
    expect((await fetch(`${s.url}/metrics`)).status).toBe(404);
    await pushBlob(s.url, 'elsewhere', 'counted');
    const samples = await scrape(s.metricsUrl!);
    expect(value(samples, 'berth_http_requests_total{route="/v2/{name}/blobs/uploads/",method="POST",status="201"}')).toBe(1);
    // The probes are there too, for a private health port.
    expect((await fetch(s.metricsUrl!.replace('/prom', '/readyz'))).status).toBe(200);

    const off = await server({ metrics: { enabled: false, path: '/metrics' } });
    expect((await fetch(`${off.url}/metrics`)).status).toBe(404);
  });

  it('label requests by endpoint template', () => {
    expect(routeOf('/v2/')).toBe('/v2/');
    expect(routeOf('/v2/a/b/c/manifests/latest')).toBe('/v2/{name}/manifests/{reference}');
    expect(routeOf('/v2/a/blobs/uploads/')).toBe('/v2/{name}/blobs/uploads/');
    expect(routeOf('/v2/a/blobs/uploads/123e4567')).toBe('/v2/{name}/blobs/uploads/{uuid}');
    expect(routeOf(`/v2/a/blobs/${sha256('x')}`)).toBe('/v2/{name}/blobs/{digest}');
    expect(routeOf('/v2/a/tags/list')).toBe('/v2/{name}/tags/list');
    expect(routeOf('/etc/passwd')).toBe('other');
  });
});
