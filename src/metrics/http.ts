import { Router, type RequestHandler } from 'express';
import { Gauge, Registry } from 'prom-client';
import type { AppDeps } from '../api/app';
import { requireOperator } from '../api/auth';
import type { SlotCaps } from '../db/operations-repo';
import { durationHistograms } from './durations';
import { fleetGauges } from './fleet';
import { processMetrics } from './registry';
import { observeRequests } from './request-observer';
import { temporalMetricsText } from './temporal-runtime';

export interface MetricsSettings {
  /** METRICS_PUBLIC: /metrics answers without the operator token (a scraper on a trusted network). */
  public: boolean;
  caps?: SlotCaps;
}

/** Counts and times every API request, and gives it a request id for the log (see request-observer.ts). */
export function metricsMiddleware(): RequestHandler {
  return observeRequests();
}

/**
 * GET /metrics in Prometheus text: this process's own metrics, the fleet read from the database at this
 * scrape, and the Temporal worker's metrics (its runtime's exporter, fetched over loopback and appended).
 * It needs the operator token (Prometheus: `authorization: { credentials_file: ... }`) unless METRICS_PUBLIC.
 */
export function metricsRoutes(deps: AppDeps): Router {
  const router = Router();
  const fromDatabase = new Registry();
  const fleet = fleetGauges(deps.knex, deps.metrics?.caps, fromDatabase);
  const durations = durationHistograms(deps.knex, fromDatabase);
  // Only where a worker runs (roles all and worker): an API-only process has no Temporal runtime to report on.
  const temporalStatus = new Registry();
  const temporalUp = new Gauge({
    name: 'node_lifecycle_temporal_metrics_up',
    help: "1 when the Temporal worker runtime's metrics were fetched for this scrape (they follow), 0 when they could not be",
    registers: [temporalStatus],
  });

  const auth = deps.metrics?.public ? [] : [requireOperator(deps.apiToken)];
  router.get('/metrics', ...auth, async (_req, res) => {
    const [, , temporal] = await Promise.all([fleet.refresh(), durations.refresh(), temporalMetricsText()]);
    const parts = [await processMetrics.metrics(), await fromDatabase.metrics()];
    if (temporal) {
      temporalUp.set('text' in temporal ? 1 : 0);
      parts.push(await temporalStatus.metrics());
      parts.push('text' in temporal ? temporal.text : `# the Temporal worker's metrics are missing from this scrape: ${temporal.error.replace(/\n/g, ' ')}\n`);
    }
    res.type(processMetrics.contentType).send(parts.join('\n'));
  });
  return router;
}
