// A test server as `berth serve --workers N` runs it (src/server/cluster.ts), in a child
// process: test/helpers/server.ts starts this file when BERTH_TEST_WORKERS is above 1.
// The ServerOptions come as JSON in BERTH_TEST_SERVER (they have no functions); each
// worker prints `{"url": ..., "port": ...}` once it listens. Plain JavaScript on the
// built code (dist/), so the child needs no TypeScript loader.

import { isWorker, runPrimary } from '../../dist/src/server/cluster.js';
import { createLogger } from '../../dist/src/server/logger.js';
import { startServer } from '../../dist/src/server/serve.js';

const options = JSON.parse(process.env.BERTH_TEST_SERVER);
const logger = createLogger({ level: process.env.BERTH_TEST_LOG_LEVEL ?? 'silent' });
if (!isWorker()) {
  await runPrimary({ workers: Number(process.env.BERTH_TEST_WORKERS), data: options.data, readOnly: options.readOnly ?? false, logger });
} else {
  const server = await startServer({ ...options, logger, sweepOrphanUploads: false });
  process.stdout.write(`${JSON.stringify({ url: server.url, port: server.port, host: server.host, metricsUrl: server.metricsUrl })}\n`);
  const stop = () => server.close().then(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}
