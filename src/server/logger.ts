// The server's logger: JSON lines (pino). Level from BERTH_LOG_LEVEL, default info.

import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(options: { level?: string; destination?: NodeJS.WritableStream } = {}): Logger {
  const level = options.level ?? process.env.BERTH_LOG_LEVEL ?? 'info';
  return options.destination ? pino({ level }, options.destination as never) : pino({ level });
}
