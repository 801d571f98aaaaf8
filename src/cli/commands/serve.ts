// `berth serve`: runs the registry. Settings come from flags, else BERTH_* variables,
// else the config file (--config / BERTH_CONFIG), else the defaults (0.0.0.0:5000,
// ./data): src/config/config.ts merges and checks them.

import { Option, type Command } from 'commander';
import { availableParallelism } from 'node:os';
import { startServer } from '../../server/serve.js';
import { isWorker, runPrimary } from '../../server/cluster.js';
import { createLogger } from '../../server/logger.js';
import { missingNodeFlags } from '../node-flags.js';
import { loadConfig } from '../../config/config.js';
import { printConfig } from '../../config/print.js';
import { explainStartupError } from '../startup-errors.js';

export function register(program: Command): void {
  program
    .command('serve')
    .description('run the registry (settings: flags > BERTH_* environment > config file > defaults)')
    .option('--config <file>', 'YAML config file, see deploy/berth.yaml (env BERTH_CONFIG)')
    .option('--print-config', 'print the settings in effect (secrets hidden) and exit')
    .option('--listen <host:port>', 'address to listen on (env BERTH_LISTEN; default 0.0.0.0:5000)')
    .option('--data <dir>', 'data directory (env BERTH_DATA; default ./data)')
    .option('--workers <n>', 'processes serving the same port and data directory (env BERTH_WORKERS; default: the number of cores; 1: one process)')
    .option('--read-only', 'maintenance mode: refuse pushes and deletes, serve pulls (env BERTH_READ_ONLY=1)')
    .option('--ui <true|false>', 'the web UI at / (env BERTH_UI; default true): --ui=false turns it off')
    .option('--tls-cert <pem>', 'serve HTTPS with this certificate; SIGHUP reloads it (env BERTH_TLS_CERT)')
    .option('--tls-key <pem>', 'private key of --tls-cert (env BERTH_TLS_KEY)')
    .option('--log-level <level>', 'trace, debug, info, warn, error or silent (env BERTH_LOG_LEVEL; default info)')
    .option('--log-format <format>', 'auto (pretty on a terminal), json or pretty (env BERTH_LOG_FORMAT)')
    .option('--metrics-listen <host:port>', 'serve /metrics on this address instead of the main one (env BERTH_METRICS_LISTEN)')
    .option('--metrics-path <path>', 'path of the Prometheus metrics (env BERTH_METRICS_PATH; default /metrics)')
    .option('--min-free-disk <size>', '/readyz fails below this free space, e.g. 1GiB (env BERTH_MIN_FREE_DISK; default 256MiB)')
    .option('--auth <mode>', 'authentication: none, token or basic (env BERTH_AUTH; default none)')
    .option('--anonymous-pull', 'let anyone pull without logging in (env BERTH_ANONYMOUS_PULL=1)')
    .option('--auth-config <file>', 'YAML auth settings: access rules, external issuers... (env BERTH_AUTH_CONFIG)')
    .option('--token-service <name>', 'service name of challenges and token audience (default berth-registry)')
    .option('--token-issuer <name>', 'issuer name of the tokens Berth signs (default berth-token-service)')
    .option('--token-realm <url>', 'token endpoint announced in challenges (default <public URL>/auth/token)')
    .option('--public-url <url>', 'the URL clients reach the registry at, e.g. behind a proxy (env BERTH_PUBLIC_URL)')
    .option('--token-ttl <seconds>', 'lifetime of access tokens (default 300)')
    .option('--external-issuer <name>', 'also accept tokens of this issuer, verified with --external-key or --external-jwks')
    .option('--external-key <pem>', "the external issuer's public key or certificate (PEM file)")
    .option('--external-jwks <path|url>', "the external issuer's JWKS (file or http(s) URL)")
    .option('--gc-interval <duration>', 'run retention and garbage collection this often, e.g. 6h (env BERTH_GC_INTERVAL; default never)')
    // --grace as in `berth gc`: one name for one setting. --gc-grace, its earlier name, still works.
    .option('--grace <duration>', 'collections keep what was uploaded or used this recently (env BERTH_GC_GRACE; default 1h)')
    .addOption(new Option('--gc-grace <duration>', 'the earlier name of --grace').hideHelp())
    .option('--gc-delete-untagged', 'scheduled collections also delete untagged manifests')
    .action(async (opts: { printConfig?: boolean } & Record<string, unknown>) => {
      const config = loadConfig({ flags: opts });
      if (opts.printConfig) {
        process.stdout.write(printConfig(config));
        return;
      }
      const logger = createLogger({ level: config.log.level, format: config.log.format });
      const { listen, data, tls, readOnly, metrics, health, events, auth, proxy, publicUrl, trustedProxies, connections, ui } = config;
      const gc = {
        intervalMs: config.gc.interval,
        graceMs: config.gc.grace,
        deleteUntagged: config.gc.deleteUntagged,
        uploadTtlMs: config.gc.uploadTtl,
        retention: config.gc.retention,
      };
      const missing = missingNodeFlags();
      if (missing.length > 0 && !isWorker()) {
        logger.warn({ missing }, 'node was started without these flags: large uploads run about a third slower (run `berth serve` or `npm start`, or pass them to node)');
      }
      const storage = { database: config.database, s3: config.storage.s3 };
      const workers = config.workers ?? availableParallelism();
      const explained = (err: unknown) => {
        throw explainStartupError(err, { listen, data }) ?? err;
      };
      if (workers > 1 && !isWorker()) return runPrimary({ workers, data, readOnly, logger, storage }).catch(explained);
      // A worker's primary swept the upload files a crash left, before any worker served;
      // with a database shared by replicas no one may (gc removes them, by age).
      const sweepOrphanUploads = !isWorker() && !storage.database;
      const server = await startServer({ listen, data, logger, auth, tls, readOnly, metrics, health, events, gc, proxy, publicUrl, trustedProxies, connections, storage, ui, sweepOrphanUploads }).catch(explained);
      logger.info(
        { listen: `${server.host}:${server.port}`, data, url: server.url, readOnly, ui, metrics: metrics.enabled ? (server.metricsUrl ?? `${server.url}${metrics.path}`) : false },
        'berth registry listening',
      );
      // SIGHUP: a renewed certificate is picked up without a restart (systemctl reload).
      process.on('SIGHUP', () => {
        if (!tls) return logger.info('SIGHUP: nothing to reload (TLS is off)');
        try {
          server.reloadTls();
          logger.info({ cert: tls.cert }, 'TLS certificate reloaded');
        } catch (err) {
          logger.error({ err }, 'TLS reload failed: keeping the current certificate');
        }
      });
      const stop = (signal: string) => {
        logger.info({ signal }, 'shutting down: finishing requests in flight');
        server.close().then(() => process.exit(0));
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
    });
}
