import { Router } from 'express';
import type { Knex } from 'knex';
import { z } from 'zod';
import { listPendingClaims } from '../../db/claims-repo';
import { listClusterEvents, listNodeEvents } from '../../db/events-repo';
import { openOperationsOf } from '../../db/operations-repo';
import { getNode, listNodes } from '../../db/nodes-repo';
import { NotFound } from '../../domain/errors';
import { NODE_STATES, type NodeState } from '../../domain/states';
import type { NodeService } from '../../services/node-service';
import type { NodeWorkflows } from '../../temporal/node-workflows';
import { presentEvent, presentNode, presentOperation, presentUnmanaged } from '../present';
import { fingerprintSchema, hostnameSchema, noQuery, oneValue, parse } from '../validation';

const acceptSchema = z.strictObject({ hostname: hostnameSchema, fingerprint: fingerprintSchema });
const actionSchema = z.strictObject({
  action: z.enum(['reinitialize'], { error: 'must be one of: reinitialize' }),
});
const listQuery = z.strictObject({ state: oneValue(z.enum(NODE_STATES)).optional() });

function taskAccepted(res: import('express').Response, hostname: string, result: { task_id: string; state: string }) {
  res
    .status(202)
    .location(`/api/v1/tasks/${result.task_id}`)
    .json({ task_id: result.task_id, hostname, state: result.state });
}

/** Operator endpoints for unmanaged and managed nodes. */
export function nodeRoutes(knex: Knex, nodes: NodeService, workflows: NodeWorkflows): Router {
  const router = Router();

  router.get('/unmanaged_nodes', async (req, res) => {
    parse(noQuery, req.query, 'query');
    res.json((await listPendingClaims(knex)).map(presentUnmanaged));
  });

  router.post('/unmanaged_nodes/:hostname/accept', async (req, res) => {
    const hostname = parse(hostnameSchema, req.params.hostname, 'hostname');
    const body = parse(acceptSchema, req.body);
    if (body.hostname !== hostname) {
      parse(z.literal(hostname, { error: `must equal the host name in the path (${hostname})` }), body.hostname, 'hostname');
    }
    taskAccepted(res, hostname, await nodes.accept(hostname, body.fingerprint));
  });

  router.get('/nodes', async (req, res) => {
    const { state } = parse(listQuery, req.query, 'query');
    const filter = state ? { states: [state as NodeState] } : { excludeStates: ['unmanaged' as NodeState] };
    res.json((await listNodes(knex, filter)).map(presentNode));
  });

  router.get('/nodes/:hostname', async (req, res) => {
    const hostname = parse(hostnameSchema, req.params.hostname, 'hostname');
    parse(noQuery, req.query, 'query');
    const node = await getNode(knex, hostname);
    if (!node) throw new NotFound(`no node ${hostname}`, { hostname });
    const body: Record<string, unknown> = {
      ...presentNode(node),
      // Queued operations are visible as queued, in the order they will run.
      operations: (await openOperationsOf(knex, hostname)).map(presentOperation),
      events: (await listNodeEvents(knex, hostname)).map(presentEvent),
      reachability_events: (await listClusterEvents(knex, { node: hostname, limit: 20, offset: 0 })).map((e) => ({ type: e.type, at: e.at.toISOString() })),
    };
    if (node.state === 'initializing') {
      // Live progress comes from the workflow; the node record stands on its own if Temporal is away.
      body.initialization = await workflows.status(hostname).catch(() => null);
    }
    res.json(body);
  });

  router.post('/nodes/:hostname/actions', async (req, res) => {
    const hostname = parse(hostnameSchema, req.params.hostname, 'hostname');
    const { action } = parse(actionSchema, req.body);
    switch (action) {
      case 'reinitialize':
        taskAccepted(res, hostname, await nodes.reinitialize(hostname));
        return;
    }
  });

  return router;
}
