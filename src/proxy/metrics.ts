// The pull-through cache's Prometheus metrics. Process-wide like the garbage collection
// counters (src/server/metrics.ts registers them with every server's registry), and
// labelled by upstream prefix only, never by repository or tag.
//
//   berth_proxy_upstream_requests_total{upstream,kind,method,status}   requests sent upstream (status "error": no answer)
//   berth_proxy_upstream_bytes_total{upstream}                         blob bytes fetched from upstream
//   berth_proxy_cache_hits_total{upstream,kind} / _misses_total        answered from the store / fetched
//   berth_proxy_stale_served_total{upstream}                           expired tags served while the upstream failed
//   berth_proxy_evicted_total{upstream,reason}                         images evicted (maxBytes, idleFor)
//   berth_proxy_ratelimit_limit{upstream} / _remaining{upstream}       Docker Hub's RateLimit-* headers, last seen

import { Counter, Gauge, type Metric } from 'prom-client';

const registers: never[] = [];

export const proxyMetrics = {
  upstreamRequests: new Counter({
    name: 'berth_proxy_upstream_requests_total',
    help: 'Requests the pull-through cache sent to an upstream, by kind (manifest, blob) and status.',
    labelNames: ['upstream', 'kind', 'method', 'status'] as const,
    registers,
  }),
  upstreamBytes: new Counter({ name: 'berth_proxy_upstream_bytes_total', help: 'Blob bytes fetched from upstreams.', labelNames: ['upstream'] as const, registers }),
  hits: new Counter({ name: 'berth_proxy_cache_hits_total', help: 'Proxied pulls answered from the store.', labelNames: ['upstream', 'kind'] as const, registers }),
  misses: new Counter({ name: 'berth_proxy_cache_misses_total', help: 'Proxied pulls that fetched from the upstream.', labelNames: ['upstream', 'kind'] as const, registers }),
  stale: new Counter({
    name: 'berth_proxy_stale_served_total',
    help: 'Tags served from the cache after their tagTtl because the upstream could not be asked.',
    labelNames: ['upstream'] as const,
    registers,
  }),
  evicted: new Counter({ name: 'berth_proxy_evicted_total', help: 'Cached images evicted, by reason (maxBytes, idleFor).', labelNames: ['upstream', 'reason'] as const, registers }),
  rateLimit: new Gauge({ name: 'berth_proxy_ratelimit_limit', help: "The upstream's RateLimit-Limit (pulls per window), last seen.", labelNames: ['upstream'] as const, registers }),
  rateRemaining: new Gauge({ name: 'berth_proxy_ratelimit_remaining', help: "The upstream's RateLimit-Remaining, last seen.", labelNames: ['upstream'] as const, registers }),
};

/** Every metric above, for a server to register (typed loosely: their label names differ). */
export const allProxyMetrics: Metric<string>[] = Object.values(proxyMetrics) as never;
