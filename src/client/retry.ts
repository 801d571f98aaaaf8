// Retries with exponential backoff for the failures that go away by themselves: a
// dropped connection, a 5xx, a 429. Everything else (4xx, digest mismatch) is final.

import { setTimeout as sleep } from 'node:timers/promises';
import { RegistryHttpError } from './errors.js';

export interface RetryOptions {
  /** Attempts in all, the first included. */
  attempts?: number;
  /** First delay in ms; doubles each time, with jitter. */
  baseDelayMs?: number;
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
}

export function isTransient(err: unknown): boolean {
  if (err instanceof RegistryHttpError) return err.status >= 500 || err.status === 429 || err.status === 408;
  if (!(err instanceof Error)) return false;
  const code = (err as NodeJS.ErrnoException).code ?? ((err as { cause?: NodeJS.ErrnoException }).cause?.code);
  if (code && ['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED', 'ERR_STREAM_PREMATURE_CLOSE', 'UND_ERR_CONNECT_TIMEOUT', 'ECONNABORTED'].includes(code)) {
    return true;
  }
  // undici reports a body cut short as TypeError('terminated') and a failed connect as 'fetch failed'.
  return err.name === 'TypeError' && (err.message === 'terminated' || err.message === 'fetch failed') || err instanceof PrematureEndError || err instanceof UploadOutOfStepError;
}

/** A response body that ended before its Content-Length. */
export class PrematureEndError extends Error {}

/**
 * A chunk the registry refused because the session is not where the client thought (416,
 * or another request still writing to it, such as the cut-off one of an earlier run):
 * asking for the upload status again and going on from there fixes it.
 */
export class UploadOutOfStepError extends Error {}

export async function withRetries<T>(fn: (attempt: number) => Promise<T>, opts: RetryOptions = {}): Promise<T> {
  const attempts = opts.attempts ?? 5;
  const base = opts.baseDelayMs ?? 200;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (attempt >= attempts || !isTransient(err)) throw err;
      const delay = Math.round(base * 2 ** (attempt - 1) * (0.75 + Math.random() / 2));
      opts.onRetry?.(err, attempt, delay);
      await sleep(delay);
    }
  }
}
