import { collectDefaultMetrics, Counter, Histogram, Registry } from 'prom-client';

/**
 * The process's one registry: what this process itself saw (API requests, agent calls) and Node's own
 * metrics. What the database knows (the fleet) is read at scrape time by the /metrics route instead.
 */
export const processMetrics = new Registry();
// Unprefixed (process_*, nodejs_*), as the usual Node.js dashboards expect them.
collectDefaultMetrics({ register: processMetrics });

/** Seconds; from a health probe (a millisecond) to a bulk request of 10,000 nodes (seconds). */
const REQUEST_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export const httpRequests = new Counter({
  name: 'node_lifecycle_http_requests_total',
  help: 'API requests answered, by method, route pattern (unmatched: no route answered) and status',
  labelNames: ['method', 'route', 'status'] as const,
  registers: [processMetrics],
});

export const httpRequestDuration = new Histogram({
  name: 'node_lifecycle_http_request_duration_seconds',
  help: 'Time from a request arriving to its response being sent, by method, route pattern and status',
  labelNames: ['method', 'route', 'status'] as const,
  buckets: REQUEST_BUCKETS,
  registers: [processMetrics],
});

export const agentCallErrors = new Counter({
  name: 'node_lifecycle_agent_call_errors_total',
  help: 'Calls from this process to node agents that failed, by kind (timeout, connection_refused, pinning_mismatch, http_4xx...)',
  labelNames: ['kind'] as const,
  registers: [processMetrics],
});
