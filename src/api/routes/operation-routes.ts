import { Router } from 'express';
import type { Knex } from 'knex';
import { z } from 'zod';
import { CLUSTER_EVENT_TYPES, pageClusterEvents } from '../../db/events-repo';
import { pageNodes } from '../../db/nodes-repo';
import { ValidationFailed } from '../../domain/errors';
import { HOOK_KINDS } from '../../domain/states';
import type { OperationService } from '../../services/operation-service';
import { cursorParam, limitParam, refuseOffsetWithCursor, sendPage } from '../paging';
import { presentNode } from '../present';
import { hostnameSchema, listParam, oneValue, paginationSchema, parse } from '../validation';

/** The node list of every multi-node request. */
export const nodeListSchema = z
  .array(hostnameSchema)
  .min(1, 'must name at least one node')
  .max(100_000)
  .refine((names) => new Set(names).size === names.length, { error: 'must not name a node twice' })
  .meta({ description: 'Every node of the request, each once; the request is validated as a whole before anything starts.' });

export const bulkSchema = z
  .strictObject({
    nodes: nodeListSchema,
    // Absent and {} mean the same: no request-level vars over the cluster defaults.
    extra_vars: z
      .record(z.string(), z.unknown())
      .optional()
      .meta({ description: 'Merged over CLUSTER_EXTRA_VARS key by key (the request wins); absent and {} mean the same.' }),
  })
  .meta({ id: 'BulkRequest' });

export const infoSchema = z.strictObject({ nodes: z.array(z.string()).max(100_000).optional() }).meta({ id: 'InfoRequest' });
export const infoQuery = z.strictObject({
  nodes: listParam.optional().meta({ description: 'Names, as ?nodes=a,b or ?nodes=a&nodes=b; unknown names are ignored, none means all.' }),
  limit: limitParam,
  cursor: cursorParam(z.string().pipe(hostnameSchema)),
});
export const eventsQuery = paginationSchema.extend({
  node: oneValue(hostnameSchema).optional().meta({ description: 'Only events that concern this node.' }),
  type: oneValue(z.enum(CLUSTER_EVENT_TYPES)).optional(),
  limit: limitParam,
  cursor: cursorParam(z.number().int().positive()),
});

/** contiv's multi-node endpoints. */
export function operationRoutes(knex: Knex, operations: OperationService): Router {
  const router = Router();

  for (const kind of HOOK_KINDS) {
    router.post(`/${kind}/nodes`, async (req, res) => {
      const body = parse(bulkSchema, req.body);
      const taskId = await operations.submit(kind, body.nodes, body.extra_vars ?? {});
      res.status(202).location(`/api/v1/tasks/${taskId}`).json({ task_id: taskId, kind, nodes: body.nodes.length });
    });
  }

  // The names may come as a JSON body (contiv) or as ?nodes=a,b (or nodes=a&nodes=b); unknown names are
  // ignored, none means all.
  router.get('/info/nodes', async (req, res) => {
    const { nodes: fromQuery, limit, cursor } = parse(infoQuery, req.query, 'query');
    const fromBody = req.body === undefined ? undefined : parse(infoSchema, req.body).nodes;
    if (fromQuery !== undefined && fromBody !== undefined) {
      throw new ValidationFailed([{ field: 'nodes', problem: 'is given both in the query and in the body; give it in one' }]);
    }
    const names = fromQuery ?? fromBody ?? [];
    const page = await pageNodes(knex, names.length > 0 ? { hostnames: names } : {}, { limit, after: cursor });
    // Names sent in the body are not in a link: the next page is the same body with ?cursor=.
    sendPage(req, res, page, presentNode, { limit, withLink: fromBody === undefined });
  });

  router.get('/events', async (req, res) => {
    const { limit, offset, cursor, ...filter } = parse(eventsQuery, req.query, 'query');
    refuseOffsetWithCursor({ cursor, offset });
    const page = await pageClusterEvents(knex, filter, { limit, offset, after: cursor });
    sendPage(req, res, page, (e) => ({ id: e.id, type: e.type, nodes: e.nodes, at: e.at.toISOString() }), { limit });
  });

  return router;
}
