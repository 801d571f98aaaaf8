// Starts a real Berth server on a random loopback port with a fresh data directory,
// and small HTTP helpers for talking to it in tests.
//
// With BERTH_TEST_WORKERS=N (N > 1) the server is `berth serve --workers N` in a child
// process (test/helpers/cluster-server.mjs), so the same tests check that every request
// may land on any process; `registry` is then this process's own view of the same data
// directory, as `berth gc` would have. Options that are functions (a custom auth
// middleware, a logger) keep the server in this process.

import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import type { Server } from 'node:http';
import { fileURLToPath } from 'node:url';
import { openRegistry } from '../../src/registry/registry.js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, type RunningServer, type ServerOptions } from '../../src/server/serve.js';
import { createLogger } from '../../src/server/logger.js';
import { REPLICA_RUN, startReplicaSet } from './replicas.js';

export interface TestServer extends RunningServer {
  dataDir: string;
  /** Stops the server and removes its data directory. */
  destroy(): Promise<void>;
}

const WORKERS = Number(process.env.BERTH_TEST_WORKERS ?? 1);
const CLUSTER_ENTRY = fileURLToPath(new URL('./cluster-server.mjs', import.meta.url));

export async function startTestServer(options: Omit<ServerOptions, 'listen'> = {}): Promise<TestServer> {
  // The HTTP suite's second run: two replicas on PostgreSQL + S3 (test/helpers/replicas.ts).
  if (REPLICA_RUN) return startReplicaSet(options);
  const dataDir = options.data ?? (await mkdtemp(join(tmpdir(), 'berth-test-')));
  const inProcess = Object.values(options).some((v) => typeof v === 'function') || options.logger !== undefined;
  if (WORKERS > 1 && !inProcess) return startClusterServer(options, dataDir);
  const server = await startServer({ logger: createLogger({ level: 'silent' }), ...options, listen: '127.0.0.1:0', data: dataDir });
  return {
    ...server,
    dataDir,
    async destroy() {
      await server.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** `berth serve --workers N` whatever BERTH_TEST_WORKERS says, for tests about several processes. */
export async function startWorkersTestServer(options: Omit<ServerOptions, 'listen'>, workers: number): Promise<TestServer> {
  return startClusterServer(options, options.data ?? (await mkdtemp(join(tmpdir(), 'berth-test-'))), workers);
}

/** The server as `berth serve --workers N`, in a child process. */
async function startClusterServer(options: Omit<ServerOptions, 'listen'>, dataDir: string, workers = WORKERS): Promise<TestServer> {
  const child = spawn(process.execPath, [CLUSTER_ENTRY], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, BERTH_TEST_WORKERS: String(workers), BERTH_TEST_SERVER: JSON.stringify({ ...options, listen: '127.0.0.1:0', data: dataDir }) },
  });
  const ready = await new Promise<{ url: string; port: number; host: string; metricsUrl?: string }>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n').find((l) => l.startsWith('{"url"'));
      if (line) resolve(JSON.parse(line));
    });
    child.once('exit', (code) => reject(new Error(`the cluster test server exited with ${code} before listening`)));
  });
  const registry = await openRegistry(dataDir, { touchIntervalMs: options.touchIntervalMs });
  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      await registry.close();
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    })());
  return {
    ...ready,
    registry,
    // Connections live in the workers: closing them is the child's business.
    server: { closeAllConnections() {}, closeIdleConnections() {} } as unknown as Server,
    reloadTls: () => void child.kill('SIGHUP'),
    close,
    dataDir,
    async destroy() {
      await close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

export function sha256(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export function sha512(data: Buffer | string): string {
  return `sha512:${createHash('sha512').update(data).digest('hex')}`;
}

/**
 * Pushes a blob in one POST with its digest; returns the digest. A registry that opens a
 * session instead (the reference registry answers 202) gets the bytes in the closing PUT.
 */
export async function pushBlob(url: string, repo: string, data: Buffer | string): Promise<string> {
  const digest = sha256(data);
  let res = await fetch(`${url}/v2/${repo}/blobs/uploads/?digest=${digest}`, { method: 'POST', body: data });
  if (res.status === 202) {
    const location = new URL(res.headers.get('location')!, url);
    location.searchParams.set('digest', digest);
    res = await fetch(location, { method: 'PUT', body: data });
  }
  if (res.status !== 201) throw new Error(`push blob: ${res.status} ${await res.text()}`);
  return digest;
}

export interface TestImage {
  config: Buffer;
  layers: Buffer[];
  manifest: Buffer;
  digest: string;
}

/** Builds an OCI image manifest over the given config and layers (not pushed). */
export function imageManifest(config: Buffer, layers: Buffer[], extra: Record<string, unknown> = {}): Buffer {
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
      layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha256(l), size: l.length })),
      ...extra,
    }),
  );
}

/** Pushes config, layers and an OCI manifest under `reference`. */
export async function pushImage(url: string, repo: string, reference: string, seed: string, extra: Record<string, unknown> = {}): Promise<TestImage> {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', seed }));
  const layers = [Buffer.from(`layer one of ${seed}`), Buffer.from(`layer two of ${seed}`)];
  await pushBlob(url, repo, config);
  for (const layer of layers) await pushBlob(url, repo, layer);
  const manifest = imageManifest(config, layers, extra);
  await putManifest(url, repo, reference, manifest);
  return { config, layers, manifest, digest: sha256(manifest) };
}

export async function putManifest(url: string, repo: string, reference: string, body: Buffer, mediaType = 'application/vnd.oci.image.manifest.v1+json'): Promise<Response> {
  const res = await fetch(`${url}/v2/${repo}/manifests/${reference}`, { method: 'PUT', headers: { 'Content-Type': mediaType }, body });
  if (res.status !== 201) throw new Error(`put manifest: ${res.status} ${await res.text()}`);
  return res;
}

/** The first error code of a spec error body. */
export async function errorCode(res: Response): Promise<string> {
  const body = (await res.json()) as { errors: { code: string }[] };
  return body.errors[0]!.code;
}
