// HTTP helpers shared by the routes: the spec's error responses, request bodies as
// streams, Range and Content-Range parsing.

import type { IncomingMessage } from 'node:http';
import { RegistryError } from '../registry/errors.js';
import type { Body } from '../registry/blobs.js';
import { paceCollections } from './heap.js';

export const API_VERSION_HEADER = { 'Docker-Distribution-API-Version': 'registry/2.0' } as const;

export function errorResponse(err: RegistryError, method: string): Response {
  const headers: Record<string, string> = { ...API_VERSION_HEADER, ...err.headers };
  if (method === 'HEAD') return new Response(null, { status: err.status, headers });
  headers['Content-Type'] = 'application/json; charset=utf-8';
  return new Response(JSON.stringify(err.toJSON()), { status: err.status, headers });
}

function contentLength(req: IncomingMessage): number | undefined {
  const raw = req.headers['content-length'];
  if (raw === undefined) return undefined;
  if (!/^\d+$/.test(raw)) throw new RegistryError('SIZE_INVALID', 'invalid Content-Length');
  return Number(raw);
}

/** Whether the request carries a body at all (a PUT that closes an upload may not). */
export function hasBody(req: IncomingMessage): boolean {
  const length = contentLength(req);
  return (length !== undefined && length > 0) || req.headers['transfer-encoding'] !== undefined;
}

/** The request body as a stream for an upload, with Content-Length and Content-Range. */
export function uploadBody(req: IncomingMessage): Body {
  const body: Body = { stream: req, length: contentLength(req), onChunk: paceCollections };
  const range = req.headers['content-range'];
  if (range !== undefined) {
    // Clients send `start-end`; some prefix `bytes ` as in a response header, or add a total,
    // which must then hold the range.
    const m = /^(?:bytes )?(\d+)-(\d+)(?:\/(\d+|\*))?$/.exec(range.trim());
    if (!m || Number(m[2]) < Number(m[1]) || (m[3] !== undefined && m[3] !== '*' && Number(m[3]) <= Number(m[2]))) {
      throw new RegistryError('BLOB_UPLOAD_INVALID', 'invalid Content-Range', { 'Content-Range': range }, { status: 416 });
    }
    body.range = { start: Number(m[1]), end: Number(m[2]) };
  }
  return body;
}

/**
 * Reads a whole body up to `limit` bytes (a manifest, the token form); 413 past it. A body
 * at most `limit` bytes too long is read to its end and dropped first, so the client
 * (which is still sending) gets the 413 instead of a broken pipe; a longer one is cut
 * off. `what` names the body in messages; a body that ends early or disagrees with its
 * Content-Length is `MANIFEST_INVALID` for a manifest, else 400 `UNSUPPORTED`.
 */
export async function readLimited(req: IncomingMessage, limit: number, what = 'manifest'): Promise<Buffer> {
  const declared = contentLength(req);
  const tooLarge = () =>
    new RegistryError('SIZE_INVALID', `${what} is larger than ${limit} bytes`, { limit }, { status: 413, headers: { Connection: 'close' } });
  const invalid = (message: string) =>
    what === 'manifest' ? new RegistryError('MANIFEST_INVALID', message) : new RegistryError('UNSUPPORTED', `${what}: ${message}`, undefined, { status: 400 });
  const drainLimit = 2 * limit;
  if (declared !== undefined && declared > drainLimit) throw tooLarge();
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of req) {
      total += (chunk as Buffer).length;
      if (total > drainLimit) throw tooLarge();
      if (total <= limit) chunks.push(chunk as Buffer);
    }
  } catch (err) {
    if (err instanceof RegistryError) throw err;
    throw invalid('request body ended early');
  }
  if (total > limit) throw tooLarge();
  if (declared !== undefined && total !== declared) throw invalid(`body had ${total} bytes, Content-Length said ${declared}`);
  return Buffer.concat(chunks, total);
}

/**
 * Parses a `Range: bytes=...` header against a blob of `size` bytes. Returns undefined
 * to serve the whole blob (no header, or a form we do not serve partially, such as
 * several ranges), and throws 416 when the range cannot be satisfied.
 */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | undefined {
  if (!header) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  let start: number;
  let end: number;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    start = Math.max(size - suffix, 0);
    end = size - 1;
    if (suffix === 0) start = size;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (start >= size || start > end) {
    throw new RegistryError('RANGE_INVALID', 'requested range not satisfiable', { range: header, size }, {
      status: 416,
      headers: { 'Content-Range': `bytes */${size}` },
    });
  }
  return { start, end };
}

/** `n` of a paginated list: a non-negative integer, at most `max`. */
export function parseN(raw: string | undefined, max: number): number | undefined {
  if (raw === undefined || raw === '') return undefined;
  if (!/^\d+$/.test(raw)) throw new RegistryError('UNSUPPORTED', 'n must be a non-negative integer', { n: raw }, { status: 400 });
  return Math.min(Number(raw), max);
}
