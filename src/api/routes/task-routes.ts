import { Router } from 'express';
import type { Knex } from 'knex';
import { z } from 'zod';
import { getTask, listTasks, TASK_STATUSES } from '../../db/tasks-repo';
import { NotFound } from '../../domain/errors';
import { presentTask } from '../present';
import { hostnameSchema, paginationSchema, parse } from '../validation';

const listQuery = paginationSchema.extend({
  hostname: hostnameSchema.optional(),
  status: z.enum(TASK_STATUSES).optional(),
});

export function taskRoutes(knex: Knex): Router {
  const router = Router();
  router.get('/tasks', async (req, res) => {
    const query = parse(listQuery, req.query, 'query');
    res.json((await listTasks(knex, query)).map(presentTask));
  });
  router.get('/tasks/:id', async (req, res) => {
    const id = parse(z.uuid({ error: 'must be a task id (UUID)' }), req.params.id, 'id');
    const task = await getTask(knex, id);
    if (!task) throw new NotFound(`no task ${id}`, { id });
    res.json(presentTask(task));
  });
  return router;
}
