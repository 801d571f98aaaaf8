// Berth as a scale-out deployment for tests: replicas on one PostgreSQL database and
// one S3 bucket (test/helpers/postgres.ts, s3.ts), behind a round-robin proxy that
// sends each request to the next replica, so consecutive requests of one client (the
// POST, PATCHes and PUT of an upload) land on different replicas.
//
// PostgreSQL and Ceph start once per test file (vitest runs each file in its own
// process) and stop when it ends (test/helpers/replicas-setup.ts); every replica set
// gets its own database and bucket.
//
// With BERTH_TEST_REPLICAS=1, startTestServer (test/helpers/server.ts) returns such a
// set: that is how the HTTP test files run a second time against two replicas.

import { createServer, request, type Server } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, type RunningServer, type ServerOptions } from '../../src/server/serve.js';
import { createLogger } from '../../src/server/logger.js';
import { startPostgres, type Postgres } from './postgres.js';
import { startS3, type S3Store } from './s3.js';
import { e2eTools } from './images.js';

/** True when the scale-out services can run here (false: skip; under BERTH_REQUIRE_E2E=1 it throws). */
export function replicaServices(): boolean {
  return e2eTools('postgres', 'ceph-mon', 'ceph-osd', 'radosgw');
}

/** Whether startTestServer gives replica sets (the HTTP suite's second run). */
export const REPLICA_RUN = process.env.BERTH_TEST_REPLICAS === '1';

let services: Promise<{ db: Postgres; s3: S3Store }> | undefined;

/** The test file's PostgreSQL and Ceph, started on first use (a test may stop and start them). */
export function sharedServices(): Promise<{ db: Postgres; s3: S3Store }> {
  services ??= Promise.all([startPostgres(), startS3()]).then(([db, s3]) => ({ db, s3 }));
  return services;
}

/** Stops the file's PostgreSQL and Ceph, if they were started. */
export async function stopSharedServices(): Promise<void> {
  if (!services) return;
  const { db, s3 } = await services;
  services = undefined;
  await Promise.all([db.destroy(), s3.destroy()]);
}

export interface ReplicaSet extends RunningServer {
  dataDir: string;
  /** Every replica, each on its own port (the set's `url` is the round-robin proxy). */
  replicas: RunningServer[];
  /** The storage configuration the replicas share (for starting another one). */
  storage: NonNullable<ServerOptions['storage']>;
  /** Starts one more replica on the same storage. */
  addReplica(): Promise<RunningServer>;
  destroy(): Promise<void>;
}

/** A proxy that sends each request to the next of `targets()`, in turn. */
function roundRobin(targets: () => string[]): Promise<Server> {
  let next = 0;
  const proxy = createServer((req, res) => {
    const list = targets();
    const { hostname, port } = new URL(list[next++ % list.length]!);
    // The path goes as received (`..` and all), as a load balancer passes it on.
    const upstream = request({ hostname, port, path: req.url, method: req.method, headers: req.headers }, (up) => {
      // Hop-by-hop headers are the replica's connection's, not the client's (a 413's
      // `Connection: close` would cut a client that is still sending).
      const { connection: _connection, 'keep-alive': _keepAlive, ...headers } = up.headers;
      res.writeHead(up.statusCode ?? 502, headers);
      up.pipe(res);
    });
    upstream.on('error', () => {
      if (!res.headersSent) return res.socket?.destroy();
      // The replica answered early (a 413) and closed: let the client finish sending.
      req.unpipe(upstream);
      req.resume();
    });
    // A client that goes away mid-body: cut the replica's request too, as load balancers do.
    req.on('close', () => {
      if (!req.complete) upstream.destroy();
    });
    req.pipe(upstream);
  });
  // A client that half-closes after its request (`socket.end(request)`) still gets the
  // answer, as from a replica itself: Node's server flag for that, off by default.
  (proxy as Server & { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true;
  return new Promise((resolve) => proxy.listen(0, '127.0.0.1', () => resolve(proxy)));
}

type Storage = NonNullable<ServerOptions['storage']>;
type S3Settings = NonNullable<Storage['s3']>;

/** A fresh database and bucket on the file's services; `s3` overrides settings (redirect...). */
export async function scaleOutStorage(s3Settings: Partial<S3Settings> = {}): Promise<Storage> {
  const { db, s3 } = await sharedServices();
  return {
    database: { url: await db.createDatabase() },
    s3: { endpoint: s3.endpoint, region: s3.region, bucket: await s3.createBucket(), accessKey: s3.accessKey, secretKey: s3.secretKey, forcePathStyle: true, ...s3Settings },
  };
}

/** The same storage as `berth serve`'s environment (the config keys' BERTH_* variables). */
export function storageEnv(storage: Storage): NodeJS.ProcessEnv {
  const s3 = storage.s3!;
  return {
    BERTH_DATABASE_URL: storage.database!.url,
    BERTH_S3_ENDPOINT: s3.endpoint,
    BERTH_S3_REGION: s3.region,
    BERTH_S3_BUCKET: s3.bucket,
    BERTH_S3_ACCESS_KEY: s3.accessKey,
    BERTH_S3_SECRET_KEY: s3.secretKey,
    BERTH_S3_FORCE_PATH_STYLE: String(s3.forcePathStyle ?? false),
    BERTH_S3_REDIRECT: String(s3.redirect ?? false),
  };
}

/** The storage of each set by its dataDir: a set started again with `data` of an earlier one is that registry restarted. */
const storageOf = new Map<string, Storage>();

export async function startReplicaSet(options: Omit<ServerOptions, 'listen'> = {}, count = 2, s3Settings: Partial<S3Settings> = {}): Promise<ReplicaSet> {
  const dataDir = options.data ?? (await mkdtemp(join(tmpdir(), 'berth-replicas-')));
  const storage = storageOf.get(dataDir) ?? (await scaleOutStorage(s3Settings));
  storageOf.set(dataDir, storage);
  const start = (i: number) =>
    startServer({ logger: createLogger({ level: 'silent' }), ...options, listen: '127.0.0.1:0', data: join(dataDir, `replica-${i}`), storage });
  const replicas: RunningServer[] = [];
  for (let i = 0; i < count; i++) replicas.push(await start(i));
  const proxy = await roundRobin(() => replicas.map((r) => r.url));
  const { port } = proxy.address() as { port: number };
  const close = async () => {
    proxy.closeAllConnections();
    await new Promise((r) => proxy.close(r));
    await Promise.all(replicas.map((r) => r.close()));
  };
  return {
    ...replicas[0]!,
    url: `http://127.0.0.1:${port}`,
    port,
    host: '127.0.0.1',
    server: proxy,
    dataDir,
    replicas,
    storage,
    async addReplica() {
      const replica = await start(replicas.length);
      replicas.push(replica);
      return replica;
    },
    close,
    async destroy() {
      await close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
