import type { Knex } from 'knex';

/** A row the change feed has seen, by key (`node:…`, `task:…`, `event:…`, `timeline:…`), with its version. */
export interface RecentRow {
  key: string;
  version: string;
  /** The nodes the row concerns. */
  hostnames: string[];
  taskId?: string;
  clusterEvent?: boolean;
}

/**
 * Rows written within the last `windowMs` by the database's clock: nodes and tasks by updated_at, node
 * and cluster events by their time. A transaction commits after it stamps its rows, so a row can show
 * up later than a newer one; looking back over a window, rather than from the last row seen, catches it
 * as long as it commits within the window.
 */
export async function recentRows(knex: Knex, windowMs: number): Promise<RecentRow[]> {
  const since = knex.raw(`now() - make_interval(secs => ?)`, [windowMs / 1000]);
  const [nodes, tasks, timeline, events] = await Promise.all([
    knex('nodes').select('hostname', 'updated_at').where('updated_at', '>', since),
    knex('tasks').select('id', 'hostname', 'updated_at').where('updated_at', '>', since),
    appended(knex, 'node_events').select('id', 'hostname').where('at', '>', since),
    appended(knex, 'cluster_events').select('id', 'nodes').where('at', '>', since),
  ]);
  return [
    ...nodes.map((r: { hostname: string; updated_at: Date }) => ({ key: `node:${r.hostname}`, version: r.updated_at.toISOString(), hostnames: [r.hostname] })),
    ...tasks.map((r: { id: string; hostname: string | null; updated_at: Date }) => ({
      key: `task:${r.id}`,
      version: r.updated_at.toISOString(),
      hostnames: r.hostname ? [r.hostname] : [],
      taskId: r.id,
    })),
    ...timeline.map((r: { id: string; hostname: string }) => ({ key: `timeline:${r.id}`, version: '', hostnames: [r.hostname] })),
    ...events.map((r: { id: string; nodes: string[] }) => ({ key: `event:${r.id}`, version: '', hostnames: r.nodes, clusterEvent: true })),
  ];
}

/** Event tables only grow: a range of their primary key bounds the scan that the time window then filters. */
const RECENT_IDS = 10_000;
function appended(knex: Knex, table: 'node_events' | 'cluster_events'): Knex.QueryBuilder {
  return knex(table).where('id', '>', knex.raw(`(select coalesce(max(id), 0) - ? from ${table})`, [RECENT_IDS]));
}

/**
 * The per-status counts of the operations of every bulk task still queued or running, as one string per
 * task: an operation moving on changes its task's string even when the task row itself is untouched.
 */
export async function openTaskProgress(knex: Knex): Promise<Map<string, string>> {
  const rows = (await knex('operations as o')
    .join('tasks as t', 't.id', 'o.task_id')
    .whereIn('t.status', ['queued', 'running'])
    .select('o.task_id', 'o.status')
    .count({ count: '*' })
    .groupBy('o.task_id', 'o.status')
    .orderBy(['o.task_id', 'o.status'])) as unknown as { task_id: string; status: string; count: string | number }[];
  const progress = new Map<string, string>();
  for (const r of rows) progress.set(r.task_id, `${progress.get(r.task_id) ?? ''}${r.status}=${r.count};`);
  return progress;
}
