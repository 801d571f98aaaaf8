// Probes for load balancers and Kubernetes:
//   GET /healthz  the process is alive and serving HTTP (liveness: restart me if not)
//   GET /readyz   the registry can do its work (readiness: send me traffic): the database
//                 answers, the data directory takes a write, the disk has room.
// Answers carry error codes only (EROFS, ENOSPC...), never paths.

import type { Hono } from 'hono';
import type { HealthService } from '../registry/health.js';
import type { Env } from './routes.js';

export interface HealthOptions {
  health: HealthService;
  /** /readyz fails below this many free bytes. */
  minFreeBytes: number;
  /** In read-only mode the data directory may be mounted read-only: writes are not checked. */
  readOnly: boolean;
}

/** A stuck file system (a dead network mount) must fail the probe, not hang it. */
const CHECK_TIMEOUT_MS = 5000;

type CheckResult = 'ok' | 'skipped' | string;

export async function readiness(options: HealthOptions): Promise<{ ready: boolean; checks: Record<string, CheckResult> }> {
  const checks: Record<string, CheckResult> = {};
  checks.database = await check(() => options.health.database());
  if (options.readOnly) {
    checks.dataDir = 'skipped';
    checks.disk = 'skipped';
  } else {
    checks.dataDir = await check(() => options.health.writable());
    checks.disk = await check(async () => {
      const free = await options.health.freeBytes();
      if (free !== undefined && free < options.minFreeBytes) throw new Error(`low disk space: ${free} bytes free, ${options.minFreeBytes} needed`);
    });
  }
  return { ready: Object.values(checks).every((r) => r === 'ok' || r === 'skipped'), checks };
}

async function check(run: () => Promise<void>): Promise<CheckResult> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${CHECK_TIMEOUT_MS} ms`)), CHECK_TIMEOUT_MS);
  });
  try {
    await Promise.race([run(), timeout]);
    return 'ok';
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code ? `failed: ${code}` : `failed: ${(err as Error).message}`;
  } finally {
    clearTimeout(timer);
  }
}

/** Adds /healthz and /readyz to an app (the registry's, or the separate metrics listener). */
export function healthRoutes(app: Hono<Env>, options: HealthOptions): void {
  const json = (status: number, body: object) =>
    new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' } });
  app.get('/healthz', () => json(200, { status: 'ok' }));
  app.get('/readyz', async () => {
    const { ready, checks } = await readiness(options);
    return json(ready ? 200 : 503, { status: ready ? 'ready' : 'not ready', checks });
  });
}
