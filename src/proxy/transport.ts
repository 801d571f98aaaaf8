// How the server's outgoing requests reach an upstream: TLS with the system's CAs plus
// the upstream's own `caFile`, and timeouts, chosen by origin. The client module
// (src/client) uses the global fetch, so the proxy installs one dispatcher that routes
// each upstream origin to an agent of its own and everything else (webhooks, the
// client's other uses) to the dispatcher that was there before.

import { readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';
import { Agent, Dispatcher, getGlobalDispatcher, setGlobalDispatcher } from 'undici';

/** A connection must be made within this, and the response's headers start within HEADERS_TIMEOUT_MS. */
const CONNECT_TIMEOUT_MS = 10_000;
const HEADERS_TIMEOUT_MS = 30_000;
/** No byte of a body for this long ends the transfer (a stalled upstream must not hang a pull). */
const BODY_TIMEOUT_MS = 60_000;

class OriginRouter extends Dispatcher {
  readonly agents = new Map<string, { agent: Agent; users: number }>();

  constructor(readonly fallback: Dispatcher) {
    super();
  }

  dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandlers): boolean {
    const origin = options.origin === undefined ? undefined : new URL(String(options.origin)).origin;
    const target = (origin && this.agents.get(origin)?.agent) || this.fallback;
    return target.dispatch(options, handler);
  }
}

let router: OriginRouter | undefined;

/**
 * Routes requests to `url`'s origin through an agent trusting the system CAs and
 * `caFile`. Returns the function that undoes it (servers in one process share the router).
 */
export function useUpstreamTransport(url: string, caFile: string | undefined): () => void {
  const origin = new URL(url).origin;
  if (!router) {
    router = new OriginRouter(getGlobalDispatcher());
    setGlobalDispatcher(router);
  }
  const current = router;
  const entry = current.agents.get(origin);
  if (entry) {
    entry.users++;
  } else {
    const ca = caFile ? [...rootCertificates, readFileSync(caFile, 'utf8')] : undefined;
    const agent = new Agent({
      connect: { timeout: CONNECT_TIMEOUT_MS, ...(ca ? { ca } : {}) },
      headersTimeout: HEADERS_TIMEOUT_MS,
      bodyTimeout: BODY_TIMEOUT_MS,
    });
    current.agents.set(origin, { agent, users: 1 });
  }
  return () => {
    const e = current.agents.get(origin);
    if (!e || --e.users > 0) return;
    current.agents.delete(origin);
    void e.agent.close().catch(() => undefined);
  };
}
