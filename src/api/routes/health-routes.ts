import { Router } from 'express';
import type { Knex } from 'knex';

/** Health answers within this, whatever its dependencies do. */
export const HEALTH_TIMEOUT_MS = 1_000;

type Probe = () => Promise<unknown>;

/**
 * A dependency's health in words safe to show anyone: no address, no driver message (those go to the
 * log of whoever looks into it, not to an unauthenticated caller).
 */
async function check(probe: Probe): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve(`unavailable: no answer within ${HEALTH_TIMEOUT_MS} ms`), HEALTH_TIMEOUT_MS);
  });
  const answer = probe().then(
    () => 'ok',
    () => 'unavailable: not reachable',
  );
  try {
    return await Promise.race([answer, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** No auth: load balancers and `npm start` scripts probe it. 200 only when both backends answer, within a second. */
export function healthRoutes(knex: Knex, temporalHealthy: (deadline: number) => Promise<void>): Router {
  const router = Router();
  router.get('/healthz', async (_req, res) => {
    const [database, temporal] = await Promise.all([
      check(() => knex.raw('select 1')),
      check(() => temporalHealthy(Date.now() + HEALTH_TIMEOUT_MS)),
    ]);
    const healthy = database === 'ok' && temporal === 'ok';
    res.status(healthy ? 200 : 503).json({ status: healthy ? 'ok' : 'unavailable', database, temporal });
  });
  return router;
}
