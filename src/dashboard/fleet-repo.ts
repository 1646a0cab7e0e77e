import type { Knex } from 'knex';
import { listNodes, type NodeRecord } from '../db/nodes-repo';
import { presentNode } from '../api/present';
import type { NodeState } from '../domain/states';

/** A node as lists and the live feed show it: presentNode without the bulky parts (facts, driver and boot data). */
export function summarizeNode(node: NodeRecord) {
  const { hostname, state, target_state, allowed_actions, fingerprint, address, last_error, reachable, last_seen_at, power_state, power_fault, driver, updated_at } =
    presentNode(node);
  return { hostname, state, target_state, allowed_actions, fingerprint, address, last_error, reachable, last_seen_at, power_state, power_fault, driver, updated_at };
}
export type NodeSummary = ReturnType<typeof summarizeNode>;

export interface NodeFilter {
  state?: NodeState;
  reachable?: boolean;
  powerFault?: boolean;
  /** Part of the host name, address or fingerprint, case-insensitive. */
  text?: string;
}

/** LIKE treats % and _ as wildcards: a search for "node_1" means those characters. */
const likeEscape = (text: string) => text.replace(/[\\%_]/g, (c) => `\\${c}`);

function filtered(knex: Knex, filter: NodeFilter): Knex.QueryBuilder {
  const query = knex('nodes');
  if (filter.state) query.where({ state: filter.state });
  // The API shows a node the monitor has not judged yet (null) as reachable.
  if (filter.reachable === true) query.whereRaw('reachable is distinct from false');
  if (filter.reachable === false) query.where({ reachable: false });
  if (filter.powerFault !== undefined) query.where({ power_fault: filter.powerFault });
  if (filter.text) {
    const pattern = `%${likeEscape(filter.text)}%`;
    query.where((q) => q.whereILike('hostname', pattern).orWhereILike('address', pattern).orWhereILike('fingerprint', pattern));
  }
  return query;
}

/** One page of the node list, in host name order, with the number of nodes the filter matches. */
export async function pageOfNodes(knex: Knex, filter: NodeFilter, page: { limit: number; offset: number }): Promise<{ total: number; nodes: NodeSummary[] }> {
  const [counted] = await filtered(knex, filter).count({ total: '*' });
  const names = await filtered(knex, filter).select('hostname').orderBy('hostname').limit(page.limit).offset(page.offset);
  const hostnames = names.map((r: { hostname: string }) => r.hostname);
  const nodes = hostnames.length > 0 ? await listNodes(knex, { hostnames }) : [];
  return { total: Number(counted?.total ?? 0), nodes: nodes.map(summarizeNode) };
}

export async function nodeSummaries(knex: Knex, hostnames: string[]): Promise<NodeSummary[]> {
  return hostnames.length > 0 ? (await listNodes(knex, { hostnames })).map(summarizeNode) : [];
}

/** The fleet overview: nodes by state, reachability, power faults, claims waiting, tasks in flight. */
export async function fleetSummary(knex: Knex) {
  const byState = (await knex('nodes').select('state').count({ count: '*' }).groupBy('state')) as unknown as { state: string; count: string | number }[];
  const [flags] = await knex('nodes').select(
    knex.raw('count(*) as total'),
    knex.raw('count(*) filter (where reachable = false) as unreachable'),
    knex.raw('count(*) filter (where power_fault) as power_faults'),
  );
  const [claims] = await knex('node_claims as c')
    .join('nodes as n', 'n.hostname', 'c.hostname')
    .where({ 'n.state': 'unmanaged', 'c.status': 'pending' })
    .count({ count: '*' });
  const [tasks] = await knex('tasks').whereIn('status', ['queued', 'running']).count({ count: '*' });
  const total = Number(flags?.total ?? 0);
  const unreachable = Number(flags?.unreachable ?? 0);
  return {
    total,
    by_state: Object.fromEntries(byState.map((r) => [r.state, Number(r.count)])) as Record<string, number>,
    reachable: total - unreachable,
    unreachable,
    power_faults: Number(flags?.power_faults ?? 0),
    pending_claims: Number(claims?.count ?? 0),
    tasks_in_flight: Number(tasks?.count ?? 0),
  };
}
export type FleetSummary = Awaited<ReturnType<typeof fleetSummary>>;
