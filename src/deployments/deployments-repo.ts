import type { Knex } from 'knex';
import { BulkRefused, Conflict, NotFound, type BulkOffender } from '../domain/errors';
import { ANNEALING_STATES, NODEROLE_STATES, SYSTEM_DEPLOYMENT, type DeploymentState, type NoderoleState } from '../domain/noderoles';
import { keysetPage, type Page, type PageRequest } from '../db/page';
import { lockScheduler, OPEN_STATUSES } from '../db/operations-repo';

export interface DeploymentRecord {
  name: string;
  parent: string | null;
  state: DeploymentState;
  description: string;
  nodes: number;
  noderoleCounts: Record<NoderoleState, number>;
  createdAt: Date;
  updatedAt: Date;
  committedAt: Date | null;
}

export interface DeploymentTree {
  name: string;
  state: DeploymentState;
  nodes: number;
  children: DeploymentTree[];
}

interface DeploymentRow {
  name: string;
  parent: string | null;
  state: DeploymentState;
  description: string;
  created_at: Date;
  updated_at: Date;
  committed_at: Date | null;
}

function zeroCounts(): Record<NoderoleState, number> {
  return Object.fromEntries(NODEROLE_STATES.map((s) => [s, 0])) as Record<NoderoleState, number>;
}

/** Node and noderole counts of the named deployments, one round trip each (both are indexed by deployment). */
async function withCounts(knex: Knex, rows: DeploymentRow[]): Promise<DeploymentRecord[]> {
  const names = rows.map((r) => r.name);
  const [nodes, noderoles] = (await Promise.all([
    knex('nodes').select('deployment').count({ n: '*' }).whereIn('deployment', names).groupBy('deployment'),
    knex('noderoles').select('deployment', 'state').count({ n: '*' }).whereIn('deployment', names).groupBy('deployment', 'state'),
  ])) as [{ deployment: string; n: string }[], { deployment: string; state: string; n: string }[]];
  const nodeCount = new Map(nodes.map((r) => [r.deployment as string, Number(r.n)]));
  const counts = new Map(names.map((n) => [n, zeroCounts()]));
  for (const r of noderoles) counts.get(r.deployment as string)![r.state as NoderoleState] = Number(r.n);
  return rows.map((row) => ({
    name: row.name,
    parent: row.parent,
    state: row.state,
    description: row.description,
    nodes: nodeCount.get(row.name) ?? 0,
    noderoleCounts: counts.get(row.name)!,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    committedAt: row.committed_at,
  }));
}

export async function getDeployment(knex: Knex, name: string): Promise<DeploymentRecord | undefined> {
  const row = await knex<DeploymentRow>('deployments').where({ name }).first();
  return row ? (await withCounts(knex, [row]))[0] : undefined;
}

export async function requireDeployment(knex: Knex, name: string): Promise<DeploymentRow> {
  const row = await knex<DeploymentRow>('deployments').where({ name }).first();
  if (!row) throw new NotFound(`no deployment ${name}`, { deployment: name });
  return row;
}

/** A deployment whose noderoles may change: proposed (system never is). */
export async function requireProposed(knex: Knex, name: string): Promise<DeploymentRow> {
  const row = await requireDeployment(knex, name);
  if (row.state !== 'proposed') {
    throw new Conflict(`deployment ${name} is ${row.state}; propose it first (POST /api/v1/deployments/${name}/propose)`, { deployment: name, state: row.state });
  }
  return row;
}

export async function pageDeployments(
  knex: Knex,
  filter: { parent?: string; state?: DeploymentState },
  page: PageRequest<string>,
): Promise<Page<DeploymentRecord, string>> {
  const matching = () => {
    const query = knex('deployments').select('*');
    if (filter.parent) query.where({ parent: filter.parent });
    if (filter.state) query.where({ state: filter.state });
    return query;
  };
  const result = await keysetPage<DeploymentRow, string>(knex, matching, page, {
    after: (query, name) => query.where('name', '>', name),
    order: (query) => query.orderBy('name'),
    keyOf: (row) => row.name,
  });
  return { ...result, rows: await withCounts(knex, result.rows) };
}

export async function createDeployment(knex: Knex, input: { name: string; parent: string; description: string }): Promise<void> {
  await knex.transaction(async (trx) => {
    await lockScheduler(trx);
    if (!(await trx('deployments').where({ name: input.parent }).first())) throw new NotFound(`no parent deployment ${input.parent}`, { parent: input.parent });
    if (await trx('deployments').where({ name: input.name }).first()) throw new Conflict(`deployment ${input.name} exists`, { deployment: input.name });
    await trx('deployments').insert({ name: input.name, parent: input.parent, state: 'proposed', description: input.description });
  });
}

/** The names from the root down to `name`. */
export async function pathOf(knex: Knex, name: string): Promise<string[]> {
  const rows = await knex.raw(
    `with recursive up(name, parent, depth) as (
       select name, parent, 0 from deployments where name = ?
       union all select d.name, d.parent, up.depth + 1 from deployments d join up on d.name = up.parent
     ) select name from up order by depth desc`,
    [name],
  );
  return rows.rows.map((r: { name: string }) => r.name);
}

/** A deployment's subtree, with node counts (deployments are few: a tree of them is read whole). */
export async function subtreeOf(knex: Knex, name: string): Promise<DeploymentTree> {
  const rows: { name: string; parent: string | null; state: DeploymentState; nodes: string }[] = (
    await knex.raw(
      `with recursive down(name, parent, state) as (
         select name, parent, state from deployments where name = ?
         union all select d.name, d.parent, d.state from deployments d join down on d.parent = down.name
       ) select down.*, (select count(*) from nodes n where n.deployment = down.name) as nodes from down order by name`,
      [name],
    )
  ).rows;
  const byName = new Map(rows.map((r) => [r.name, { name: r.name, state: r.state, nodes: Number(r.nodes), children: [] as DeploymentTree[] }]));
  for (const r of rows) if (r.name !== name && r.parent) byName.get(r.parent)?.children.push(byName.get(r.name)!);
  return byName.get(name)!;
}

/** Puts a committed deployment back to proposed; refused for system and while an anneal of it is under way. */
export async function proposeDeployment(knex: Knex, name: string): Promise<void> {
  await knex.transaction(async (trx) => {
    await lockScheduler(trx);
    const row = await trx<DeploymentRow>('deployments').where({ name }).forUpdate().first();
    if (!row) throw new NotFound(`no deployment ${name}`, { deployment: name });
    if (name === SYSTEM_DEPLOYMENT) throw new Conflict('the system deployment cannot be proposed (it holds every node until it is moved)', { deployment: name });
    if (row.state === 'proposed') return;
    const busy = await trx('noderoles').select('id', 'role', 'hostname', 'state').where({ deployment: name }).whereIn('state', ANNEALING_STATES).orderBy('id').limit(10);
    if (busy.length > 0) {
      throw new Conflict(`deployment ${name} is being annealed (${busy.map((b) => `${b.role} on ${b.hostname} is ${b.state}`).join('; ')}); propose it when its commit task has ended`, {
        deployment: name,
        noderoles: busy.map((b) => Number(b.id)),
      });
    }
    await trx('deployments').where({ name }).update({ state: 'proposed', updated_at: trx.fn.now() });
  });
}

/**
 * Moves nodes into `name`. Refused, naming each, for a node with an operation queued or running, or
 * with noderoles in the deployment it leaves (its work there would be orphaned: unbind them first).
 */
export async function moveNodes(knex: Knex, name: string, hostnames: string[]): Promise<string[]> {
  return knex.transaction(async (trx) => {
    await lockScheduler(trx);
    await requireDeployment(trx, name);
    const offenders = await movingOffenders(trx, name, hostnames);
    if (offenders.length > 0) throw new BulkRefused('move', offenders);
    const moved = await trx('nodes').whereIn('hostname', hostnames).whereNot({ deployment: name }).update({ deployment: name, updated_at: trx.fn.now() }).returning('hostname');
    return moved.map((m: { hostname: string }) => m.hostname);
  });
}

/** Why each of `hostnames` cannot move into `name` (under the scheduler lock). */
export async function movingOffenders(trx: Knex.Transaction, name: string, hostnames: string[]): Promise<BulkOffender[]> {
  const nodes: { hostname: string; deployment: string }[] = await trx('nodes').select('hostname', 'deployment').whereIn('hostname', hostnames);
  const deploymentOf = new Map(nodes.map((n) => [n.hostname, n.deployment]));
  const open = new Set((await trx('operations').distinct('hostname').whereIn('hostname', hostnames).whereIn('status', OPEN_STATUSES)).map((r) => r.hostname as string));
  const bound: { hostname: string; roles: string[] }[] = (
    await trx.raw('select hostname, array_agg(role order by role) as roles from noderoles where hostname = any(?) group by hostname', [hostnames])
  ).rows;
  const roles = new Map(bound.map((b) => [b.hostname, b.roles]));
  const offenders: BulkOffender[] = [];
  for (const hostname of hostnames) {
    const from = deploymentOf.get(hostname);
    if (from === undefined) offenders.push({ node: hostname, problem: 'unknown node' });
    else if (from === name) continue;
    else if (open.has(hostname)) offenders.push({ node: hostname, problem: 'has an operation queued or running; move it when the node is idle' });
    else if (roles.has(hostname)) offenders.push({ node: hostname, problem: `has roles bound in deployment ${from} (${roles.get(hostname)!.join(', ')}); unbind them first` });
  }
  return offenders;
}

/** Deletes an empty deployment: no children, no nodes, no noderoles. */
export async function deleteDeployment(knex: Knex, name: string): Promise<void> {
  await knex.transaction(async (trx) => {
    await lockScheduler(trx);
    await requireDeployment(trx, name);
    if (name === SYSTEM_DEPLOYMENT) throw new Conflict('the system deployment cannot be deleted', { deployment: name });
    const children = (await trx('deployments').select('name').where({ parent: name }).orderBy('name').limit(10)).map((r) => r.name);
    if (children.length > 0) throw new Conflict(`deployment ${name} has child deployments (${children.join(', ')}); delete them first`, { deployment: name, children });
    const nodes = (await trx('nodes').select('hostname').where({ deployment: name }).orderBy('hostname').limit(10)).map((r) => r.hostname);
    if (nodes.length > 0) {
      throw new Conflict(`deployment ${name} holds nodes (${nodes.join(', ')}); move them out first (POST /api/v1/deployments/system/nodes)`, { deployment: name, nodes });
    }
    await trx('deployment_roles').where({ deployment: name }).delete();
    await trx('deployments').where({ name }).delete();
  });
}

/** The deployment's attributes for a role (adds the role to the deployment); proposed only. */
export async function setDeploymentRole(knex: Knex, name: string, role: string, attributes: Record<string, unknown>): Promise<void> {
  await knex.transaction(async (trx) => {
    await lockScheduler(trx);
    await requireProposed(trx, name);
    if (!(await trx('roles').where({ name: role }).first())) throw new NotFound(`no role ${role}`, { role });
    await trx('deployment_roles')
      .insert({ deployment: name, role, attributes: JSON.stringify(attributes) })
      .onConflict(['deployment', 'role'])
      .merge({ attributes: JSON.stringify(attributes) });
  });
}

export async function deploymentRoles(knex: Knex, name: string): Promise<{ role: string; attributes: Record<string, unknown> }[]> {
  return knex('deployment_roles').select('role', 'attributes').where({ deployment: name }).orderBy('role');
}
