// The server's logger (pino): JSON lines, or human-readable lines (pino-pretty) when
// stdout is a terminal or format is `pretty`. Level from the config (or BERTH_LOG_LEVEL), default info.

import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';

export type { Logger };

export interface LoggerOptions {
  level?: string;
  /** `auto`: pretty on a terminal, JSON otherwise (log collectors read JSON). */
  format?: 'auto' | 'json' | 'pretty';
  destination?: NodeJS.WritableStream;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? process.env.BERTH_LOG_LEVEL ?? 'info';
  if (options.destination) return pino({ level }, options.destination as never);
  const format = options.format ?? 'auto';
  if (format === 'pretty' || (format === 'auto' && process.stdout.isTTY)) {
    // In-process stream rather than a worker transport: lines stay in order with exits.
    return pino({ level }, pretty({ colorize: process.stdout.isTTY, translateTime: 'SYS:standard', ignore: 'pid,hostname', sync: true }));
  }
  return pino({ level });
}
