import { Router } from 'express';
import type { Knex } from 'knex';
import { z } from 'zod';
import { pagePendingClaims } from '../../db/claims-repo';
import { listClusterEvents, listNodeEvents } from '../../db/events-repo';
import { openOperationsOf } from '../../db/operations-repo';
import { getNode, pageNodes } from '../../db/nodes-repo';
import { NotFound } from '../../domain/errors';
import { NODE_STATES, type NodeState } from '../../domain/states';
import type { NodeService } from '../../services/node-service';
import type { NodeWorkflows } from '../../temporal/node-workflows';
import { getBootEntry } from '../../provisioning/boot-entries-repo';
import { latestInstallOf } from '../../provisioning/installs-repo';
import { cursorParam, limitParam, sendPage, timeKey } from '../paging';
import { presentBootEntry, presentEvent, presentInstall, presentNode, presentOperation, presentUnmanaged } from '../present';
import { fingerprintSchema, hostnameSchema, noQuery, oneValue, parse } from '../validation';

export const acceptSchema = z
  .strictObject({ hostname: hostnameSchema, fingerprint: fingerprintSchema })
  .meta({ id: 'AcceptRequest', description: 'The fingerprint is the one the node\'s own agent prints; the claim with that key is accepted.' });
export const actionSchema = z
  .strictObject({
    action: z.enum(['reinitialize'], { error: 'must be one of: reinitialize' }),
  })
  .meta({ id: 'NodeActionRequest' });
export const nodesQuery = z.strictObject({
  state: oneValue(z.enum(NODE_STATES)).optional().meta({ description: 'Only nodes in this state (default: every accepted node).' }),
  limit: limitParam,
  cursor: cursorParam(z.string().pipe(hostnameSchema)),
});
export const unmanagedQuery = z.strictObject({
  hostname: oneValue(hostnameSchema).optional().meta({ description: "Only this host's claims." }),
  limit: limitParam,
  cursor: cursorParam(z.tuple([hostnameSchema, timeKey, fingerprintSchema])),
});

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
    const { hostname, limit, cursor } = parse(unmanagedQuery, req.query, 'query');
    sendPage(req, res, await pagePendingClaims(knex, { hostname }, { limit, after: cursor }), presentUnmanaged, { limit });
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
    const { state, limit, cursor } = parse(nodesQuery, req.query, 'query');
    const filter = state ? { states: [state as NodeState] } : { excludeStates: ['unmanaged' as NodeState] };
    sendPage(req, res, await pageNodes(knex, filter, { limit, after: cursor }), presentNode, { limit });
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
      deploy: await latestInstallOf(knex, hostname).then((install) => (install ? presentInstall(install) : null)),
      boot: await getBootEntry(knex, hostname).then((entry) => (entry ? presentBootEntry(entry) : null)),
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
