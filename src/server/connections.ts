// Limits on connections, against clients that hold the server's sockets without using
// them: a cap on the open connections of one client address, and a timeout on request
// bodies that stop moving. Node's own timeouts cover the rest: headers must arrive
// within `headersTimeout` (60 s) and an idle keep-alive connection is closed after
// `keepAliveTimeout`; there is no timeout on a whole request, since a large blob takes
// as long as it takes.

import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { addressGroup, type ClientAddresses } from './client-address.js';
import { hasBody } from './http.js';
import type { Logger } from './logger.js';

export interface ConnectionLimits {
  /** Open connections one client address (an IPv6 /64) may hold; 0 for no cap. Trusted proxies are not capped. */
  maxPerAddress: number;
  /**
   * A request body that brings fewer than MIN_BODY_PROGRESS bytes within this many
   * milliseconds is cut (its connection closed); 0 turns it off. A slow upload that keeps
   * moving is never cut, whatever its total time.
   */
  bodyTimeout: number;
}

export const DEFAULT_CONNECTION_LIMITS: ConnectionLimits = { maxPerAddress: 256, bodyTimeout: 30_000 };

/** What a body must bring per `bodyTimeout`: a byte every ten seconds is not moving, 34 bytes a second is. */
export const MIN_BODY_PROGRESS = 1024;

export function limitConnections(server: Server, clients: ClientAddresses, limits: ConnectionLimits, logger: Logger): void {
  if (limits.maxPerAddress > 0) capPerAddress(server, clients, limits.maxPerAddress, logger);
  if (limits.bodyTimeout > 0) {
    server.on('request', (req: IncomingMessage, res: ServerResponse) => watchBody(req, res, limits.bodyTimeout, logger));
  }
}

function capPerAddress(server: Server, clients: ClientAddresses, max: number, logger: Logger): void {
  const open = new Map<string, number>();
  // A flood of refused connections must not become a flood of log lines: one a second.
  let lastWarning = 0;
  // A TLS server's 'connection' is the TCP socket, before any handshake: refused ones cost nothing.
  server.on('connection', (socket: Socket) => {
    if (clients.isTrustedProxy(socket.remoteAddress)) return;
    const address = addressGroup(socket.remoteAddress ?? 'unknown');
    const count = (open.get(address) ?? 0) + 1;
    if (count > max) {
      if (Date.now() - lastWarning >= 1000) {
        lastWarning = Date.now();
        logger.warn({ address, max }, 'connection refused: too many open connections from this address');
      }
      socket.destroy();
      return;
    }
    open.set(address, count);
    socket.once('close', () => {
      const left = open.get(address)! - 1;
      if (left > 0) open.set(address, left);
      else open.delete(address);
    });
  });
}

/**
 * Checks every `timeoutMs` whether the body moved. It did if the socket read at least
 * MIN_BODY_PROGRESS bytes since the last check, or if the request holds bytes the server
 * has not read yet: then the server is the slow side (a busy disk), not the client.
 */
function watchBody(req: IncomingMessage, res: ServerResponse, timeoutMs: number, logger: Logger): void {
  try {
    if (!hasBody(req) || req.complete) return;
  } catch {
    return; // a malformed Content-Length: the route answers it; a throw here would end the process
  }
  const socket = req.socket;
  let lastRead = socket.bytesRead;
  const timer = setInterval(() => {
    const read = socket.bytesRead;
    if (req.complete || read - lastRead >= MIN_BODY_PROGRESS || req.readableLength > 0) {
      lastRead = read;
      return;
    }
    stop();
    logger.warn(
      { address: socket.remoteAddress, method: req.method, url: req.url, timeoutMs },
      'request body stalled: connection closed',
    );
    socket.destroy();
  }, timeoutMs);
  timer.unref();
  const stop = () => clearInterval(timer);
  req.once('end', stop);
  res.once('close', stop);
}
