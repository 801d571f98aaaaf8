// A throwaway S3-compatible store for the tests of the S3 blob store: Ceph's RADOS Gateway
// (Debian: ceph-mon ceph-osd radosgw) with one monitor, one OSD keeping objects in memory
// (memstore) and one gateway, all on 127.0.0.1, no authentication between them and no
// manager daemon. One per test file; 1 to 2 s to start. Never call `ceph -s`/`ceph df`
// against it: without a manager they hang.
//
// Settings it cannot do without (measured, see DESIGN.md):
// - auth `none` needs every `ms_*_mode = crc`, else the gateway waits 300 s for the mon;
// - `paxos_propose_interval = 0.05`, else each map change (OSD boot, 7 pools) costs ~1 s;
// - the OSD must be `active` before the gateway creates its pools, else +5 s;
// - `tcp_nodelay=1` on beast, else every GET with a body stalls 40 ms.
//
//   if (e2eTools('ceph-mon', 'ceph-osd', 'radosgw')) { const s3 = await startS3(); ... await s3.destroy(); }

import { execFile } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { TOOLS } from './images.js';
import { freePort } from '../../bench/servers.js';
import { serviceDir, startDaemon, type Daemon } from './daemon.js';

const run = promisify(execFile);
const START_TIMEOUT_MS = 60_000;
const ACCESS_KEY = 'berth-test-access';
const SECRET_KEY = 'berth-test-secret';

export interface S3Store {
  /** `http://127.0.0.1:PORT`, the gateway (path-style addressing). */
  endpoint: string;
  region: string;
  accessKey: string;
  secretKey: string;
  /** A bucket made at start for the test file. */
  bucket: string;
  /** An SDK client with the settings Ceph needs, for a test to look at the bucket itself. */
  client: S3Client;
  /** Makes another empty bucket and returns its name. */
  createBucket(): Promise<string>;
  /** Stops the gateway only (an S3 outage); the cluster and its objects stay. */
  stopGateway(): Promise<void>;
  /** Starts the gateway again on the same port, after `stopGateway`. */
  startGateway(): Promise<void>;
  /** Stops every daemon and removes the cluster's directory. */
  destroy(): Promise<void>;
}

/** The S3 client settings Ceph's gateway needs (DESIGN.md, "Scale-out facts"). */
export function s3Client(endpoint: string, accessKey = ACCESS_KEY, secretKey = SECRET_KEY): S3Client {
  return new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: accessKey, secretAccessKey: secretKey },
    // The SDK's default trailing checksums make a streamed PutObject fail with 411 on Ceph 16.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

function cephConf(dir: string, fsid: string, monPort: number, s3Port: number): string {
  return `[global]
fsid = ${fsid}
mon_host = v2:127.0.0.1:${monPort}
public_addr = 127.0.0.1
cluster_addr = 127.0.0.1
ms_bind_msgr1 = false
ms_bind_msgr2 = true
ms_bind_ipv6 = false
# no cephx on loopback; then every connection mode must be crc (else a 300 s hang)
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
ms_mon_client_mode = crc
ms_client_mode = crc
ms_mon_cluster_mode = crc
ms_cluster_mode = crc
ms_mon_service_mode = crc
ms_service_mode = crc
# one OSD: no replication, few placement groups, no autoscaler (there is no manager)
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
osd_crush_chooseleaf_type = 0
mon_allow_pool_size_one = true
mon_max_pg_per_osd = 1000
mon_warn_on_pool_no_redundancy = false
mon_data_avail_warn = 2
mon_data_avail_crit = 1
client_mount_timeout = 30
rgw_init_timeout = 60
# commit map changes in milliseconds instead of about a second each
paxos_propose_interval = 0.05
paxos_min_wait = 0.01
run_dir = ${dir}/run
admin_socket = ${dir}/run/$name.asok
log_file = ${dir}/log/$name.log
mon_data = ${dir}/mon.$id
osd_data = ${dir}/osd.$id
crash_dir = ${dir}/crash
[osd]
osd_objectstore = memstore
memstore_device_bytes = 4294967296
[client.rgw.a]
# tcp_nodelay: else every GET with a body pays a 40 ms Nagle/delayed-ACK stall
rgw_frontends = beast endpoint=127.0.0.1:${s3Port} tcp_nodelay=1
rgw_thread_pool_size = 64
rgw_dns_name = localhost
`;
}

async function gatewayAnswers(endpoint: string, gateway: Daemon): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  // The gateway prints nothing when its frontend is up: ask it until it answers.
  for (;;) {
    if (!gateway.running()) throw new Error(`radosgw exited:\n${gateway.output().slice(-4000)}`);
    try {
      const res = await fetch(`${endpoint}/`, { signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`radosgw did not answer on ${endpoint}: ${String(err)}\n${gateway.output().slice(-4000)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

let buckets = 0;

export async function startS3(): Promise<S3Store> {
  const dir = await serviceDir('s3');
  const conf = join(dir, 'ceph.conf');
  const daemons: Daemon[] = [];
  const stopAll = async () => {
    // gateway first, monitor last: each one's clients go before it does
    for (const d of [...daemons].reverse()) await d.stop();
  };
  try {
    await Promise.all(['run', 'log', 'mon.a', 'osd.0'].map((d) => mkdir(join(dir, d))));
    const monPort = await freePort();
    const s3Port = await freePort();
    const fsid = randomUUID();
    await writeFile(conf, cephConf(dir, fsid, monPort, s3Port));
    await run('monmaptool', ['--create', '--fsid', fsid, '--addv', 'a', `[v2:127.0.0.1:${monPort}]`, join(dir, 'monmap')]);
    await run(TOOLS['ceph-mon'], ['-c', conf, '-i', 'a', '--mkfs', '--monmap', join(dir, 'monmap')]);
    const mon = startDaemon('ceph-mon', TOOLS['ceph-mon'], ['-d', '-c', conf, '-i', 'a']);
    daemons.push(mon);

    // `osd new` waits for the monitor to form its quorum of one.
    const uuid = randomUUID();
    await run('ceph', ['-c', conf, '--connect-timeout', '30', 'osd', 'new', uuid], { timeout: START_TIMEOUT_MS });
    await run(TOOLS['ceph-osd'], ['-c', conf, '-i', '0', '--mkfs', '--osd-uuid', uuid]);
    const osd = startDaemon('ceph-osd', TOOLS['ceph-osd'], ['-d', '-c', conf, '-i', '0']);
    daemons.push(osd);
    // Pools the gateway creates before the OSD is up get their placement groups a mon tick later (+5 s).
    await osd.waitFor(/state: booting -> active/, START_TIMEOUT_MS, 'booting -> active');

    const endpoint = `http://127.0.0.1:${s3Port}`;
    const startGateway = async () => {
      const gateway = startDaemon('radosgw', TOOLS.radosgw, ['-d', '-c', conf, '-n', 'client.rgw.a']);
      daemons.push(gateway);
      await gatewayAnswers(endpoint, gateway);
    };
    await startGateway();
    await run('radosgw-admin', ['-c', conf, 'user', 'create', '--uid=berth', '--display-name=berth', `--access-key=${ACCESS_KEY}`, `--secret-key=${SECRET_KEY}`]);

    const client = s3Client(endpoint);
    const createBucket = async () => {
      const name = `berth-${process.pid}-${++buckets}`;
      await client.send(new CreateBucketCommand({ Bucket: name }));
      return name;
    };
    const bucket = await createBucket();
    return {
      endpoint,
      region: 'us-east-1',
      accessKey: ACCESS_KEY,
      secretKey: SECRET_KEY,
      bucket,
      client,
      createBucket,
      async stopGateway() {
        const gateway = daemons.pop()!;
        await gateway.stop();
      },
      startGateway,
      async destroy() {
        client.destroy();
        await stopAll();
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await stopAll();
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
