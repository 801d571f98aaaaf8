// `berth serve`: runs the registry. Settings come from flags, else BERTH_* variables,
// else the embedded defaults (0.0.0.0:5000, ./data).

import type { Command } from 'commander';
import { startServer } from '../../server/serve.js';
import { createLogger } from '../../server/logger.js';
import { parseDuration } from '../../registry/duration.js';
import { authConfigFromFlags, type AuthFlags } from '../../../auth/config.js';

export function register(program: Command): void {
  program
    .command('serve')
    .description('run the registry')
    .option('--listen <host:port>', 'address to listen on (env BERTH_LISTEN)', process.env.BERTH_LISTEN ?? '0.0.0.0:5000')
    .option('--data <dir>', 'data directory (env BERTH_DATA)', process.env.BERTH_DATA ?? 'data')
    .option('--auth <mode>', 'authentication: none, token or basic (env BERTH_AUTH; default none)', process.env.BERTH_AUTH)
    .option('--anonymous-pull', 'let anyone pull without logging in (env BERTH_ANONYMOUS_PULL=1)', process.env.BERTH_ANONYMOUS_PULL === '1')
    .option('--auth-config <file>', 'YAML auth settings: access rules, external issuers... (env BERTH_AUTH_CONFIG)', process.env.BERTH_AUTH_CONFIG)
    .option('--token-service <name>', 'service name of challenges and token audience (default berth-registry)')
    .option('--token-issuer <name>', 'issuer name of the tokens Berth signs (default berth-token-service)')
    .option('--token-realm <url>', 'token endpoint announced in challenges (default <this server>/auth/token)')
    .option('--token-ttl <seconds>', 'lifetime of access tokens (default 300)')
    .option('--external-issuer <name>', 'also accept tokens of this issuer, verified with --external-key or --external-jwks')
    .option('--external-key <pem>', "the external issuer's public key or certificate (PEM file)")
    .option('--external-jwks <path|url>', "the external issuer's JWKS (file or http(s) URL)")
    .option('--gc-interval <duration>', 'run garbage collection this often, e.g. 6h (env BERTH_GC_INTERVAL; default never)', process.env.BERTH_GC_INTERVAL)
    .option('--gc-grace <duration>', 'keep what was uploaded or used this recently', '1h')
    .option('--gc-delete-untagged', 'scheduled collections also delete untagged manifests')
    .action(async (opts: { listen: string; data: string; gcInterval?: string; gcGrace: string; gcDeleteUntagged?: boolean } & AuthFlags) => {
      const logger = createLogger();
      const gc = {
        intervalMs: opts.gcInterval ? parseDuration(opts.gcInterval) : undefined,
        graceMs: parseDuration(opts.gcGrace),
        deleteUntagged: opts.gcDeleteUntagged,
      };
      const server = await startServer({ listen: opts.listen, data: opts.data, logger, auth: authConfigFromFlags(opts), gc });
      logger.info({ listen: `${server.host}:${server.port}`, data: opts.data }, 'berth registry listening');
      const stop = (signal: string) => {
        logger.info({ signal }, 'shutting down: finishing requests in flight');
        server.close().then(() => process.exit(0));
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
    });
}
