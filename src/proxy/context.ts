// What the cache needs to know about the request being served, which the registry's
// service calls do not carry: the client's Accept list (passed upstream, so indexes
// and artifacts keep their digests) and the blob a GET is about to send.

import { AsyncLocalStorage } from 'node:async_hooks';
import type { Upstream } from './upstream.js';

export interface ProxyRequest {
  accept?: string;
  /** Set by a blob stat that found the blob only upstream; the GET's send then fetches it. */
  uncachedBlob?: { repository: string; digest: string; size: number; upstream: Upstream };
}

export const proxyRequest = new AsyncLocalStorage<ProxyRequest>();
