import { createHash } from 'node:crypto';
import { Router } from 'express';
import type { Knex } from 'knex';
import { z } from 'zod';
import { requireOperator } from '../api/auth';
import { noQuery, oneValue, paginationSchema, parse } from '../api/validation';
import { NODE_STATES, type NodeState } from '../domain/states';
import { ChangeFeed } from './change-feed';
import { fleetSummary, pageOfNodes } from './fleet-repo';
import { sessionRoutes } from './session-routes';
import { sessionValid } from './sessions';
import { staticRoutes } from './static-routes';

export interface DashboardDeps {
  knex: Knex;
  apiToken: string;
  /** The Temporal web UI's workflow list (…/namespaces/NS/workflows); node pages link a node's workflow under it. */
  temporalWorkflowsUrl?: string;
}

const flag = oneValue(z.enum(['true', 'false'], { error: 'must be true or false' })).transform((v) => v === 'true');

export const dashboardNodesQuery = paginationSchema.extend({
  state: oneValue(z.enum(NODE_STATES, { error: `must be one of: ${NODE_STATES.join(', ')}` })).optional(),
  reachable: flag.optional(),
  power_fault: flag.optional(),
  q: oneValue(z.string().max(253)).optional(),
});

/** A subscriber this far behind (a stalled browser) is dropped rather than buffered without end. */
const MAX_BUFFERED_BYTES = 1 << 20;

/**
 * The web dashboard: its static build, the log-in session, and the endpoints only it needs (a filtered,
 * paged node list, the fleet summary, the live change stream). Mounted before the API's own bearer check,
 * so every endpoint here names its own authentication.
 */
export function dashboardRoutes(deps: DashboardDeps): Router {
  const router = Router();
  const operator = requireOperator(deps.apiToken);
  const tokenDigest = createHash('sha256').update(deps.apiToken).digest();
  const feed = new ChangeFeed(deps.knex);

  router.use(staticRoutes());
  router.use(sessionRoutes(deps.apiToken, operator));

  router.get('/api/v1/dashboard/nodes', operator, async (req, res) => {
    const query = parse(dashboardNodesQuery, req.query, 'query');
    const filter = { state: query.state as NodeState | undefined, reachable: query.reachable, powerFault: query.power_fault, text: query.q?.trim() || undefined };
    const page = await pageOfNodes(deps.knex, filter, query);
    res.json({ total: page.total, limit: query.limit, offset: query.offset, nodes: page.nodes });
  });

  router.get('/api/v1/dashboard/summary', operator, async (req, res) => {
    parse(noQuery, req.query, 'query');
    res.json(await fleetSummary(deps.knex));
  });

  router.get('/api/v1/dashboard/settings', operator, (req, res) => {
    parse(noQuery, req.query, 'query');
    res.json({ temporal_workflows_url: deps.temporalWorkflowsUrl ?? null, states: NODE_STATES });
  });

  // Server-Sent Events: every browser shares the process's one poll of the database (ChangeFeed).
  router.get('/api/v1/dashboard/stream', operator, (req, res) => {
    parse(noQuery, req.query, 'query');
    const session = res.locals.operatorSession as string | undefined;
    res.status(200).set({ 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', 'x-accel-buffering': 'no' });
    res.flushHeaders();
    const write = (event: string, data: unknown) => res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    // The browser reconnects after this long when the stream breaks, and reloads its view on `hello`.
    res.write('retry: 3000\n\n');
    write('hello', {});
    const unsubscribe = feed.subscribe({
      send(event, data) {
        if (res.writableLength > MAX_BUFFERED_BYTES) res.end();
        else write(event, data);
      },
      // A logged-out or expired session stops receiving at the next poll.
      valid: () => session === undefined || sessionValid(session, tokenDigest),
      end: () => res.end(),
    });
    res.on('close', unsubscribe);
  });

  return router;
}
