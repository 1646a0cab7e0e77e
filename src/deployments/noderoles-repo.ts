import type { Knex } from 'knex';
import { BulkRefused, Conflict, InvalidState, NotFound, type BulkOffender } from '../domain/errors';
import {
  NODEROLE_STATES,
  nextNoderoleState,
  noderoleStatesFor,
  noderoleTargetOf,
  SYSTEM_DEPLOYMENT,
  withRequirements,
  type NoderoleState,
} from '../domain/noderoles';
import { keysetPage, type Page, type PageRequest } from '../db/page';
import { lockScheduler } from '../db/operations-repo';
import { movingOffenders, requireDeployment, requireProposed } from './deployments-repo';
import { roleGraph } from './roles-repo';

/**
 * A noderole's effective attributes, later wins per key: the role's defaults, the deployment's for the
 * role, the noderole's own (`nr`, `r` and `dr` are the aliases every query here gives them).
 */
export const EFFECTIVE_ATTRIBUTES = "(r.attributes || coalesce(dr.attributes, '{}'::jsonb) || nr.attributes)";

/** A noderole that ran with other attributes, or another revision of its role, than it would run with now. */
const CHANGED_SINCE_RUN = `(${EFFECTIVE_ATTRIBUTES} is distinct from nr.run_attributes or r.revision is distinct from nr.run_revision)`;

export interface NoderoleRecord {
  id: number;
  deployment: string;
  role: string;
  hostname: string;
  state: NoderoleState;
  attributes: Record<string, unknown>;
  effectiveAttributes: Record<string, unknown>;
  requires: string[];
  error: string | null;
  taskId: string | null;
  operationId: number | null;
  runs: number;
  result: Record<string, unknown> | null;
  createdAt: Date;
  updatedAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
}

function withRoleAndDeployment(knex: Knex): Knex.QueryBuilder {
  return knex('noderoles as nr')
    .join('roles as r', 'r.name', 'nr.role')
    .leftJoin('deployment_roles as dr', (j) => j.on('dr.deployment', 'nr.deployment').andOn('dr.role', 'nr.role'))
    .leftJoin('operations as o', 'o.id', 'nr.operation_id')
    .select('nr.*', 'r.requires', knex.raw(`${EFFECTIVE_ATTRIBUTES} as effective_attributes`), 'o.result as op_result');
}

/** A list shows each run's outcome without its output (up to 64 KB a stream); GET /noderoles/{id} has it all. */
function withoutOutput(result: Record<string, unknown> | null): Record<string, unknown> | null {
  if (!result) return null;
  const { stdout: _stdout, stderr: _stderr, ...outcome } = result;
  return outcome;
}

function toNoderole(row: any, options: { output: boolean } = { output: true }): NoderoleRecord {
  const op = row.op_result as Record<string, unknown> | null;
  // A script role's run is kept under `role`, a built-in role's under its operation's own keys.
  const run = (op?.role as Record<string, unknown> | undefined) ?? op ?? null;
  const result = options.output ? run : withoutOutput(run);
  return {
    id: Number(row.id),
    deployment: row.deployment,
    role: row.role,
    hostname: row.hostname,
    state: row.state,
    attributes: row.attributes,
    effectiveAttributes: row.effective_attributes,
    requires: row.requires,
    error: row.error,
    taskId: row.task_id,
    operationId: row.operation_id === null ? null : Number(row.operation_id),
    runs: row.runs,
    result,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
  };
}

export async function getNoderole(knex: Knex, id: number): Promise<NoderoleRecord | undefined> {
  const row = await withRoleAndDeployment(knex).where('nr.id', id).first();
  return row ? toNoderole(row) : undefined;
}

export interface NoderoleFilter {
  deployment?: string;
  hostname?: string;
  role?: string;
  state?: NoderoleState;
  taskId?: string;
}

export async function pageNoderoles(knex: Knex, filter: NoderoleFilter, page: PageRequest<number>): Promise<Page<NoderoleRecord, number>> {
  const matching = () => {
    const query = withRoleAndDeployment(knex);
    if (filter.deployment) query.where('nr.deployment', filter.deployment);
    if (filter.hostname) query.where('nr.hostname', filter.hostname);
    if (filter.role) query.where('nr.role', filter.role);
    if (filter.state) query.where('nr.state', filter.state);
    if (filter.taskId) query.where('nr.task_id', filter.taskId);
    return query;
  };
  const result = await keysetPage<any, number>(knex, matching, page, {
    after: (query, id) => query.where('nr.id', '>', id),
    order: (query) => query.orderBy('nr.id'),
    keyOf: (row) => Number(row.id),
  });
  return { ...result, rows: result.rows.map((row) => toNoderole(row, { output: false })) };
}

/**
 * Binds a role to nodes in a proposed deployment, with the roles it requires (on the same nodes). A
 * node still in `system` moves into the deployment; a node of another deployment is refused. Given
 * attributes replace the named role's noderoles' own.
 */
export async function bindRole(
  knex: Knex,
  input: { deployment: string; role: string; hostnames: string[]; attributes?: Record<string, unknown> },
): Promise<NoderoleRecord[]> {
  const ids = await knex.transaction(async (trx) => {
    await lockScheduler(trx);
    await requireProposed(trx, input.deployment);
    const graph = await roleGraph(trx);
    if (!graph.has(input.role)) throw new NotFound(`no role ${input.role}`, { role: input.role });
    const roles = withRequirements([input.role], graph);

    const nodes: { hostname: string; deployment: string }[] = await trx('nodes').select('hostname', 'deployment').whereIn('hostname', input.hostnames);
    const deploymentOf = new Map(nodes.map((n) => [n.hostname, n.deployment]));
    const offenders: BulkOffender[] = [];
    const joining: string[] = [];
    for (const hostname of input.hostnames) {
      const home = deploymentOf.get(hostname);
      if (home === undefined) offenders.push({ node: hostname, problem: 'unknown node' });
      else if (home === SYSTEM_DEPLOYMENT) joining.push(hostname);
      else if (home !== input.deployment) {
        offenders.push({ node: hostname, problem: `is in deployment ${home}; move it first (POST /api/v1/deployments/${input.deployment}/nodes)` });
      }
    }
    if (joining.length > 0) offenders.push(...(await movingOffenders(trx, input.deployment, joining)));
    if (offenders.length > 0) throw new BulkRefused('bind', offenders);
    if (joining.length > 0) await trx('nodes').whereIn('hostname', joining).update({ deployment: input.deployment, updated_at: trx.fn.now() });

    await trx('deployment_roles')
      .insert(roles.map((role) => ({ deployment: input.deployment, role })))
      .onConflict(['deployment', 'role'])
      .ignore();
    const rows = input.hostnames.flatMap((hostname) =>
      roles.map((role) => ({
        deployment: input.deployment,
        role,
        hostname,
        state: 'proposed',
        attributes: JSON.stringify(role === input.role ? (input.attributes ?? {}) : {}),
      })),
    );
    for (let i = 0; i < rows.length; i += 1000) await trx('noderoles').insert(rows.slice(i, i + 1000)).onConflict(['hostname', 'role']).ignore();
    if (input.attributes) {
      await trx('noderoles')
        .where({ deployment: input.deployment, role: input.role })
        .whereIn('hostname', input.hostnames)
        .update({ attributes: JSON.stringify(input.attributes), updated_at: trx.fn.now() });
    }
    const bound = await trx('noderoles').select('id').where({ deployment: input.deployment }).whereIn('role', roles).whereIn('hostname', input.hostnames).orderBy('id');
    return bound.map((b) => Number(b.id));
  });
  return (await pageNoderolesByIds(knex, ids)).sort((a, b) => a.id - b.id);
}

async function pageNoderolesByIds(knex: Knex, ids: number[]): Promise<NoderoleRecord[]> {
  if (ids.length === 0) return [];
  return (await withRoleAndDeployment(knex).whereIn('nr.id', ids)).map((row: unknown) => toNoderole(row, { output: false }));
}

/** Unbinds a role from nodes; refused for a noderole that is running or that another on the node requires. */
export async function unbindRole(knex: Knex, input: { deployment: string; role: string; hostnames: string[] }): Promise<number> {
  return knex.transaction(async (trx) => {
    await lockScheduler(trx);
    await requireProposed(trx, input.deployment);
    if (!(await trx('roles').where({ name: input.role }).first())) throw new NotFound(`no role ${input.role}`, { role: input.role });
    const bound: { hostname: string; state: NoderoleState }[] = await trx('noderoles')
      .select('hostname', 'state')
      .where({ deployment: input.deployment, role: input.role })
      .whereIn('hostname', input.hostnames);
    const stateOf = new Map(bound.map((b) => [b.hostname, b.state]));
    const dependents: { hostname: string; role: string }[] = await trx('noderoles as nr')
      .join('roles as r', 'r.name', 'nr.role')
      .select('nr.hostname', 'nr.role')
      .where('nr.deployment', input.deployment)
      .whereIn('nr.hostname', input.hostnames)
      .whereRaw('? = any(r.requires)', [input.role]);
    const offenders: BulkOffender[] = [];
    for (const hostname of input.hostnames) {
      const state = stateOf.get(hostname);
      const needs = dependents.filter((d) => d.hostname === hostname).map((d) => d.role);
      if (state === undefined) offenders.push({ node: hostname, problem: `has no ${input.role} noderole in deployment ${input.deployment}` });
      else if (state === 'transition') offenders.push({ node: hostname, problem: `is running ${input.role}; unbind it when it has ended`, state });
      else if (needs.length > 0) offenders.push({ node: hostname, problem: `has ${needs.join(', ')} bound, which require(s) ${input.role}; unbind those first` });
    }
    if (offenders.length > 0) throw new BulkRefused('unbind', offenders);
    return Number(await trx('noderoles').where({ deployment: input.deployment, role: input.role }).whereIn('hostname', input.hostnames).delete());
  });
}

/** Replaces a noderole's own attributes; its deployment must be proposed. */
export async function setNoderoleAttributes(knex: Knex, id: number, attributes: Record<string, unknown>): Promise<void> {
  await knex.transaction(async (trx) => {
    await lockScheduler(trx);
    const row = await trx('noderoles').where({ id }).first();
    if (!row) throw new NotFound(`no noderole ${id}`, { id });
    await requireProposed(trx, row.deployment);
    await trx('noderoles').where({ id }).update({ attributes: JSON.stringify(attributes), updated_at: trx.fn.now() });
  });
}

export interface AnnealTask {
  taskId: string;
  deployment: string;
  /** Noderoles the task put in todo. */
  noderoles: number;
}

/** Inserts the task an anneal reports on: kind `anneal`, no hostname, its deployment in details. */
async function insertAnnealTask(trx: Knex.Transaction, taskId: string, deployment: string, cause: string): Promise<void> {
  await trx('tasks').insert({ id: taskId, kind: 'anneal', hostname: null, status: 'queued', details: JSON.stringify({ deployment, cause }) });
}

/**
 * Commits a proposed deployment: its proposed noderoles, and those whose effective attributes or role
 * revision changed since their last run, go to todo under a new task. `validate` runs inside the
 * transaction (refusing leaves nothing behind); `kick` too, so a commit the annealer is not told of is
 * rolled back rather than left waiting.
 */
export async function commitDeployment(
  knex: Knex,
  input: { deployment: string; taskId: string; validate(trx: Knex.Transaction): Promise<void>; kick(): Promise<void> },
): Promise<AnnealTask> {
  return knex.transaction(async (trx) => {
    await lockScheduler(trx);
    const deployment = await requireDeployment(trx, input.deployment);
    if (deployment.state !== 'proposed') {
      throw new Conflict(`deployment ${input.deployment} is ${deployment.state}; propose it, change it, then commit`, { deployment: input.deployment, state: deployment.state });
    }
    await refuseMissingRequirements(trx, input.deployment);
    await input.validate(trx);
    await insertAnnealTask(trx, input.taskId, input.deployment, 'commit');
    const proposed = await trx('noderoles')
      .where({ deployment: input.deployment })
      .whereIn('state', noderoleStatesFor('commit'))
      .update({ state: noderoleTargetOf('commit'), task_id: input.taskId, error: null, updated_at: trx.fn.now() });
    const changed = await trx.raw(
      `update noderoles nr set state = ?, task_id = ?, error = null, updated_at = now()
         from roles r left join deployment_roles dr on dr.deployment = ? and dr.role = r.name
        where r.name = nr.role and nr.deployment = ? and nr.state = any(?) and ${CHANGED_SINCE_RUN}`,
      [noderoleTargetOf('changed'), input.taskId, input.deployment, input.deployment, noderoleStatesFor('changed')],
    );
    // A blocked noderole may be unblocked by what this commit runs (an errored role with changed attributes):
    // it then runs under this task, and if it stays blocked this task reports it.
    await trx('noderoles').where({ deployment: input.deployment, state: 'blocked' }).update({ task_id: input.taskId, updated_at: trx.fn.now() });
    await trx('deployments').where({ name: input.deployment }).update({ state: 'committed', committed_at: trx.fn.now(), updated_at: trx.fn.now() });
    await input.kick();
    return { taskId: input.taskId, deployment: input.deployment, noderoles: proposed + (changed.rowCount ?? 0) };
  });
}

/** The installs a commit of `deployment` would run: its proposed os-install noderoles and the changed ones, with their image. */
export async function installsToRun(trx: Knex.Transaction, deployment: string): Promise<{ id: number; hostname: string; image: unknown }[]> {
  const rows = await trx('noderoles as nr')
    .join('roles as r', 'r.name', 'nr.role')
    .leftJoin('deployment_roles as dr', (j) => j.on('dr.deployment', 'nr.deployment').andOn('dr.role', 'nr.role'))
    .select('nr.id', 'nr.hostname', trx.raw(`${EFFECTIVE_ATTRIBUTES}->'image' as image`))
    .where({ 'nr.deployment': deployment, 'r.kind': 'os-install' })
    .where((q) => q.whereIn('nr.state', noderoleStatesFor('commit')).orWhere((c) => c.whereIn('nr.state', noderoleStatesFor('changed')).whereRaw(CHANGED_SINCE_RUN)))
    .orderBy('nr.id');
  return rows.map((r) => ({ id: Number(r.id), hostname: r.hostname, image: r.image }));
}

/** Every noderole's required roles must be bound on its node (a role's `requires` may have grown since it was bound). */
async function refuseMissingRequirements(trx: Knex.Transaction, deployment: string): Promise<void> {
  const missing: { hostname: string; role: string; required: string }[] = (
    await trx.raw(
      `select nr.hostname, nr.role, req.name as required
         from noderoles nr join roles r on r.name = nr.role cross join lateral unnest(r.requires) as req(name)
        where nr.deployment = ?
          and not exists (select 1 from noderoles d where d.hostname = nr.hostname and d.role = req.name and d.deployment = nr.deployment)
        order by nr.hostname, nr.role limit 20`,
      [deployment],
    )
  ).rows;
  if (missing.length > 0) {
    throw new BulkRefused(
      'commit',
      missing.map((m) => ({ node: m.hostname, problem: `${m.role} requires ${m.required}, which is not bound to the node; bind ${m.role} again to bind what it requires` })),
    );
  }
}

/** Puts an errored noderole back to todo under a new task, with the noderoles it blocked on its node. */
export async function retryNoderole(knex: Knex, input: { id: number; taskId: string; kick(deployment: string): Promise<void> }): Promise<AnnealTask> {
  return knex.transaction(async (trx) => {
    await lockScheduler(trx);
    const row = await trx('noderoles').where({ id: input.id }).forUpdate().first();
    if (!row) throw new NotFound(`no noderole ${input.id}`, { id: input.id });
    if (!nextNoderoleState(row.state, 'retry')) {
      throw new InvalidState(`noderole ${input.id} (${row.role} on ${row.hostname}) is ${row.state}; only a noderole in error can be retried`, {
        state: row.state,
        allowed: [],
      });
    }
    const deployment = await requireDeployment(trx, row.deployment);
    if (deployment.state !== 'committed') {
      throw new Conflict(`deployment ${row.deployment} is proposed; commit it to run its noderoles`, { deployment: row.deployment, state: deployment.state });
    }
    await insertAnnealTask(trx, input.taskId, row.deployment, `retry of noderole ${input.id}`);
    await trx('noderoles').where({ id: input.id }).update({ state: noderoleTargetOf('retry'), task_id: input.taskId, error: null, updated_at: trx.fn.now() });
    // What it blocked follows it into the new task; the annealer blocks again whatever another error still blocks.
    const unblocked = await trx('noderoles')
      .where({ deployment: row.deployment, hostname: row.hostname })
      .whereIn('state', noderoleStatesFor('dependency_retried'))
      .update({ state: noderoleTargetOf('dependency_retried'), task_id: input.taskId, error: null, updated_at: trx.fn.now() });
    await input.kick(row.deployment);
    return { taskId: input.taskId, deployment: row.deployment, noderoles: 1 + unblocked };
  });
}

/**
 * A task's noderoles by state, and a page of them (GET /tasks/{id} of an anneal). A retry takes the
 * retried noderole and those it blocked into its own task, so an earlier task shows what is left of it.
 */
export async function annealProgress(knex: Knex, taskId: string, page: { limit: number; offset: number }) {
  const counts: { state: NoderoleState; n: string }[] = await knex('noderoles').select('state').count({ n: '*' }).where({ task_id: taskId }).groupBy('state');
  const progress: Record<string, number> = { total: 0, ...Object.fromEntries(NODEROLE_STATES.filter((s) => s !== 'proposed').map((s) => [s, 0])) };
  for (const c of counts) {
    progress[c.state] = Number(c.n);
    progress.total! += Number(c.n);
  }
  const noderoles = await knex('noderoles').select('id', 'role', 'hostname', 'state', 'error').where({ task_id: taskId }).orderBy('id').limit(page.limit).offset(page.offset);
  return { progress, noderoles: noderoles.map((n) => ({ id: Number(n.id), role: n.role as string, node: n.hostname as string, state: n.state as NoderoleState, error: n.error as string | null })) };
}
