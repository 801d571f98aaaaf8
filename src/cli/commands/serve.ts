// `berth serve`: runs the registry. Settings come from flags, else BERTH_* variables,
// else the embedded defaults (0.0.0.0:5000, ./data).

import type { Command } from 'commander';
import { startServer } from '../../server/serve.js';
import { createLogger } from '../../server/logger.js';

export function register(program: Command): void {
  program
    .command('serve')
    .description('run the registry')
    .option('--listen <host:port>', 'address to listen on (env BERTH_LISTEN)', process.env.BERTH_LISTEN ?? '0.0.0.0:5000')
    .option('--data <dir>', 'data directory (env BERTH_DATA)', process.env.BERTH_DATA ?? 'data')
    .action(async (opts: { listen: string; data: string }) => {
      const logger = createLogger();
      const server = await startServer({ listen: opts.listen, data: opts.data, logger });
      logger.info({ listen: `${server.host}:${server.port}`, data: opts.data }, 'berth registry listening');
      const stop = (signal: string) => {
        logger.info({ signal }, 'shutting down: finishing requests in flight');
        server.close().then(() => process.exit(0));
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
    });
}
