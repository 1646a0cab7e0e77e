import { Router } from 'express';
import type { Knex } from 'knex';
import { z } from 'zod';
import { BulkAcceptService } from '../../services/bulk-accept-service';
import type { OperationService } from '../../services/operation-service';
import { parse } from '../validation';
import { acceptSchema } from './node-routes';

/** The most hosts one bulk accept may name: its validation and its rows are one transaction. */
export const MAX_BULK_ACCEPT = 10_000;

export const bulkAcceptSchema = z
  .strictObject({
    nodes: z
      .array(acceptSchema)
      .min(1, 'must name at least one node')
      .max(MAX_BULK_ACCEPT, `must name at most ${MAX_BULK_ACCEPT.toLocaleString('en')} nodes; send the rest as another request`)
      .superRefine((nodes, ctx) => {
        const seen = new Set<string>();
        const repeated = new Set<string>();
        for (const { hostname } of nodes) (seen.has(hostname) ? repeated : seen).add(hostname);
        if (repeated.size > 0) ctx.addIssue({ code: 'custom', message: `names ${[...repeated].join(', ')} more than once; name each host once` });
      })
      .meta({ description: `Each host once, with the fingerprint its own agent prints; at most ${MAX_BULK_ACCEPT.toLocaleString('en')}.` }),
  })
  .meta({ id: 'BulkAcceptRequest' });

/** POST /unmanaged_nodes/accept: salt-key -A. Its path has no host name, so it never meets /unmanaged_nodes/{hostname}/accept. */
export function bulkAcceptRoutes(knex: Knex, operations: OperationService): Router {
  const router = Router();
  const service = new BulkAcceptService(knex, operations);
  router.post('/unmanaged_nodes/accept', async (req, res) => {
    const body = parse(bulkAcceptSchema, req.body);
    const taskId = await service.submit(body.nodes);
    res.status(202).location(`/api/v1/tasks/${taskId}`).json({ task_id: taskId, kind: 'accept', nodes: body.nodes.length });
  });
  return router;
}
