import type { Knex } from 'knex';

export interface NodeEventRecord {
  id: number;
  hostname: string;
  type: string;
  fromState: string | null;
  toState: string | null;
  event: string | null;
  cause: string | null;
  taskId: string | null;
  at: Date;
}

export async function listNodeEvents(knex: Knex, hostname: string, limit = 100): Promise<NodeEventRecord[]> {
  const rows = await knex('node_events').where({ hostname }).orderBy('id', 'asc').limit(limit);
  return rows.map((r) => ({
    id: Number(r.id),
    hostname: r.hostname,
    type: r.type,
    fromState: r.from_state,
    toState: r.to_state,
    event: r.event,
    cause: r.cause,
    taskId: r.task_id,
    at: r.at,
  }));
}
