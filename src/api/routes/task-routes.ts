import { Router } from 'express';
import type { Knex } from 'knex';
import { z } from 'zod';
import { getTask, pageTasks, TASK_STATUSES } from '../../db/tasks-repo';
import { NotFound } from '../../domain/errors';
import { operationsOfTask, taskProgress } from '../../db/operations-repo';
import { annealProgress } from '../../deployments/noderoles-repo';
import { cursorParam, limitParam, refuseOffsetWithCursor, sendPage, timeKey } from '../paging';
import { presentOperation, presentTask } from '../present';
import { hostnameSchema, oneValue, paginationSchema, parse } from '../validation';

export const taskIdSchema = z.uuid({ error: 'must be a task id (UUID)' });

export const nodePage = z.strictObject({
  node_limit: oneValue(z.coerce.number().int().min(1).max(100_000)).default(10_000).meta({ description: 'Per-node rows of a bulk task to show (default 10,000).' }),
  node_offset: oneValue(z.coerce.number().int().min(0)).default(0).meta({ description: 'Per-node rows to skip (default 0).' }),
});

export const tasksQuery = paginationSchema.extend({
  hostname: oneValue(hostnameSchema).optional().meta({ description: "Only this node's tasks." }),
  status: oneValue(z.enum(TASK_STATUSES)).optional(),
  limit: limitParam,
  cursor: cursorParam(z.tuple([timeKey, z.uuid()])),
});

export function taskRoutes(knex: Knex): Router {
  const router = Router();
  router.get('/tasks', async (req, res) => {
    const { limit, offset, cursor, ...filter } = parse(tasksQuery, req.query, 'query');
    refuseOffsetWithCursor({ cursor, offset });
    sendPage(req, res, await pageTasks(knex, filter, { limit, offset, after: cursor }), presentTask, { limit });
  });
  // A bulk task carries its per-node progress and results (paged with node_limit / node_offset).
  router.get('/tasks/:id', async (req, res) => {
    const id = parse(taskIdSchema, req.params.id, 'id');
    const page = parse(nodePage, req.query, 'query');
    const task = await getTask(knex, id);
    if (!task) throw new NotFound(`no task ${id}`, { id });
    const body: Record<string, unknown> = presentTask(task);
    if (task.kind === 'anneal') {
      // A deployment's commit or retry: its progress is its noderoles'.
      Object.assign(body, await annealProgress(knex, id, { limit: page.node_limit, offset: page.node_offset }));
    } else if (task.hostname === null) {
      const { stepFailures: _internal, ...progress } = await taskProgress(knex, id);
      body.progress = progress;
      body.nodes = (await operationsOfTask(knex, id, { limit: page.node_limit, offset: page.node_offset })).map(presentOperation);
    }
    res.json(body);
  });
  return router;
}
