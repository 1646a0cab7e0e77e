import type { Knex } from 'knex';
import { keysetPage, type Page, type PageRequest } from './page';

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

/** Cluster events, each naming the list of nodes it concerns: the monitor's and the power sync's. */
export const CLUSTER_EVENT_TYPES = ['discovered', 'disappeared', 'power_corrected', 'power_fault', 'power_fault_cleared'] as const;

/** discovered / disappeared: monitor events, each naming the list of nodes it concerns. */
export interface ClusterEventRecord {
  id: number;
  type: string;
  nodes: string[];
  at: Date;
}

function clusterEventsMatching(knex: Knex, filter: { node?: string; type?: string }): Knex.QueryBuilder {
  const query = knex('cluster_events');
  if (filter.type) query.where({ type: filter.type });
  if (filter.node) query.whereRaw('nodes @> ?', [[filter.node]]);
  return query;
}

type ClusterEventRow = { id: string | number; type: string; nodes: string[]; at: Date };
const toClusterEvent = (r: ClusterEventRow): ClusterEventRecord => ({ id: Number(r.id), type: r.type, nodes: r.nodes, at: r.at });

export async function listClusterEvents(
  knex: Knex,
  filter: { node?: string; type?: string; limit: number; offset: number },
): Promise<ClusterEventRecord[]> {
  const query = clusterEventsMatching(knex, filter).orderBy('id', 'desc').limit(filter.limit).offset(filter.offset);
  return ((await query) as ClusterEventRow[]).map(toClusterEvent);
}

/** Cluster events, newest first, a page at a time; the id is the cursor (type by (type, id), node by its GIN index). */
export async function pageClusterEvents(
  knex: Knex,
  filter: { node?: string; type?: string },
  page: PageRequest<number>,
): Promise<Page<ClusterEventRecord, number>> {
  const result = await keysetPage<ClusterEventRow, number>(knex, () => clusterEventsMatching(knex, filter), page, {
    after: (query, id) => query.where('id', '<', id),
    order: (query) => query.orderBy('id', 'desc'),
    keyOf: (row) => Number(row.id),
  });
  return { ...result, rows: result.rows.map(toClusterEvent) };
}

/**
 * One monitor sweep: nodes silent for longer than `silentMs` disappear, nodes heard from again (or for
 * the first time) are discovered; each kind becomes one event listing all its nodes.
 */
export async function sweepReachability(knex: Knex, silentMs: number): Promise<{ disappeared: string[]; discovered: string[] }> {
  return knex.transaction(async (trx) => {
    const cutoff = new Date(Date.now() - silentMs);
    const gone = await trx('nodes')
      .where('last_seen_at', '<', cutoff)
      .where((q) => q.where({ reachable: true }).orWhereNull('reachable'))
      .update({ reachable: false, updated_at: new Date() })
      .returning('hostname');
    const back = await trx('nodes')
      .where('last_seen_at', '>=', cutoff)
      .where((q) => q.where({ reachable: false }).orWhereNull('reachable'))
      .update({ reachable: true, updated_at: new Date() })
      .returning('hostname');
    const disappeared = gone.map((r: { hostname: string }) => r.hostname).sort();
    const discovered = back.map((r: { hostname: string }) => r.hostname).sort();
    if (disappeared.length > 0) await trx('cluster_events').insert({ type: 'disappeared', nodes: disappeared });
    if (discovered.length > 0) await trx('cluster_events').insert({ type: 'discovered', nodes: discovered });
    return { disappeared, discovered };
  });
}
