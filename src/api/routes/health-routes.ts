import { Router } from 'express';
import type { Knex } from 'knex';

/** No auth: load balancers and `npm start` scripts probe it. 200 only when both backends answer. */
export function healthRoutes(knex: Knex, temporalHealthy: () => Promise<void>): Router {
  const router = Router();
  router.get('/healthz', async (_req, res) => {
    const probe = async (check: () => Promise<unknown>) => {
      try {
        await check();
        return 'ok';
      } catch (err) {
        return `unavailable: ${(err as Error).message}`;
      }
    };
    const [database, temporal] = await Promise.all([probe(() => knex.raw('select 1')), probe(temporalHealthy)]);
    const healthy = database === 'ok' && temporal === 'ok';
    res.status(healthy ? 200 : 503).json({ status: healthy ? 'ok' : 'unavailable', database, temporal });
  });
  return router;
}
