import type { Knex } from 'knex';
import { holdImage } from '../images/images-repo';
import { createInstalls } from '../provisioning/installs-repo';
import { BLOCKING_STATES, nextNoderoleState, SETTLED_STATES, workOfRole, type NoderoleEvent, type NoderoleState, type RoleKind } from '../domain/noderoles';
import { isStable, operationTarget, type NodeState } from '../domain/states';
import { installFacts, lastQueuedChanges, lockScheduler } from '../db/operations-repo';
import { osInstallProblems, registeredImages } from './install-fitness';
import { EFFECTIVE_ATTRIBUTES } from './noderoles-repo';

export interface AnnealPass {
  /** The deployment was deleted: its annealer ends. */
  gone: boolean;
  /** Nodes with a noderole's operation waiting to be claimed: woken (again) after the pass. */
  wake: string[];
  /** Noderoles in todo or transition: while any, the annealer keeps looking. */
  working: number;
  /** Something settled that may make more noderoles runnable: pass again at once. */
  again: boolean;
}

interface PassRow {
  id: string;
  hostname: string;
  role: string;
  kind: RoleKind;
  requires: string[];
  revision: number;
  state: NoderoleState;
  task_id: string | null;
  effective: Record<string, unknown>;
  op_status: string | null;
  op_error: string | null;
}

/**
 * One pass of a deployment's annealer (OpenCrowbar's), in one transaction under the scheduler lock, so
 * no noderole is ever handed out twice: settle the noderoles whose operation ended; block the todo
 * noderoles whose required role (same node) is in error, unblock those it no longer blocks; hand each
 * runnable one (all its required roles active) to its node's operation queue; close the anneal tasks
 * with nothing left to do.
 */
export async function annealPass(knex: Knex, deployment: string): Promise<AnnealPass> {
  return knex.transaction(async (trx) => {
    await lockScheduler(trx);
    const found = await trx('deployments').select('state').where({ name: deployment }).first();
    if (!found) return { gone: true, wake: [], working: 0, again: false };

    const rows: PassRow[] = (
      await trx.raw(
        `select nr.id, nr.hostname, nr.role, r.kind, r.requires, r.revision, nr.state, nr.task_id,
                ${EFFECTIVE_ATTRIBUTES} as effective, o.status as op_status, o.error as op_error
           from noderoles nr join roles r on r.name = nr.role
           left join deployment_roles dr on dr.deployment = nr.deployment and dr.role = nr.role
           left join operations o on o.id = nr.operation_id
          where nr.deployment = ? and nr.state <> 'proposed'
          order by nr.id`,
        [deployment],
      )
    ).rows;
    let again = false;
    const apply = async (row: PassRow, event: NoderoleEvent, changes: Record<string, unknown> = {}) => {
      const to = nextNoderoleState(row.state, event);
      if (!to) throw new Error(`noderole ${row.id}: ${event} is not allowed from ${row.state}`);
      await trx('noderoles').where({ id: row.id }).update({ state: to, updated_at: trx.fn.now(), ...changes });
      row.state = to;
      again = true;
    };

    // 1. Settle the noderoles whose operation has ended.
    for (const row of rows) {
      if (row.state !== 'transition' || (row.op_status !== 'succeeded' && row.op_status !== 'failed')) continue;
      if (row.op_status === 'succeeded') await apply(row, 'succeeded', { error: null, finished_at: trx.fn.now() });
      else await apply(row, 'failed', { error: row.op_error ?? 'the operation failed', finished_at: trx.fn.now() });
    }

    // 2. Block and unblock, node by node, required roles first (the same-node dependency order).
    const byNode = new Map<string, Map<string, PassRow>>();
    for (const row of rows) {
      if (!byNode.has(row.hostname)) byNode.set(row.hostname, new Map());
      byNode.get(row.hostname)!.set(row.role, row);
    }
    const runnable: PassRow[] = [];
    for (const [, roles] of byNode) {
      for (const row of inDependencyOrder(roles)) {
        const required = row.requires.map((name) => ({ name, row: roles.get(name) }));
        const blocker = required.find((r) => r.row && BLOCKING_STATES.includes(r.row.state));
        if (row.state === 'todo' && blocker) {
          await apply(row, 'dependency_failed', { error: `requires ${blocker.name}, which is ${blocker.row!.state}` });
        } else if (row.state === 'blocked' && !blocker) {
          await apply(row, 'dependency_retried', { error: null });
        }
        if (row.state !== 'todo') continue;
        const unbound = required.find((r) => !r.row);
        if (unbound) {
          await apply(row, 'refused', { error: `requires ${unbound.name}, which is not bound to ${row.hostname}` });
        } else if (required.every((r) => r.row!.state === 'active')) {
          runnable.push(row);
        }
      }
    }

    // 3. Hand the runnable ones to their nodes' queues (a proposed deployment hands out nothing new).
    if (found.state === 'committed' && runnable.length > 0) {
      if (await handOut(trx, runnable, apply)) again = true;
    }

    // 4. Close the tasks whose noderoles have all settled.
    await finishSettledTasks(trx, deployment);

    const working = rows.filter((r) => r.state === 'todo' || r.state === 'transition').length;
    const wake: string[] = (
      await trx('noderoles as nr')
        .join('operations as o', 'o.id', 'nr.operation_id')
        .distinct('nr.hostname')
        .where({ 'nr.deployment': deployment, 'nr.state': 'transition', 'o.status': 'queued' })
    ).map((r) => r.hostname);
    return { gone: false, wake, working, again };
  });
}

/** A node's noderoles with every required role before the roles requiring it. */
function inDependencyOrder(roles: Map<string, PassRow>): PassRow[] {
  const ordered: PassRow[] = [];
  const seen = new Set<string>();
  const visit = (name: string) => {
    const row = roles.get(name);
    if (!row || seen.has(name)) return;
    seen.add(name);
    row.requires.forEach(visit);
    ordered.push(row);
  };
  [...roles.keys()].forEach(visit);
  return ordered;
}

/**
 * Queues an operation for each runnable noderole, judged (as a bulk request judges a node) by the
 * state its node will be in once the operations already queued on it have run. Returns whether any
 * noderole settled at once (satisfied or refused).
 */
async function handOut(
  trx: Knex.Transaction,
  runnable: PassRow[],
  apply: (row: PassRow, event: NoderoleEvent, changes?: Record<string, unknown>) => Promise<void>,
): Promise<boolean> {
  const hostnames = [...new Set(runnable.map((r) => r.hostname))];
  const facts = new Map((await installFacts(trx, hostnames)).map((f) => [f.hostname, f]));
  const pending = await lastQueuedChanges(trx, hostnames);
  // The image names are read only when an install is handed out: most passes hand out none.
  let images: Set<string> | undefined;
  let settled = false;
  for (const row of runnable) {
    const node = facts.get(row.hostname)!;
    const queued = pending.get(row.hostname);
    const expected: NodeState = queued ? operationTarget(queued) : node.state;
    // A node on its way somewhere (initializing, deploying, commissioning…) is left alone until it has
    // arrived, as OpenCrowbar's annealer ignores a node that is not alive; the annealer looks again.
    if (!isStable(expected)) continue;
    const ran = { run_attributes: JSON.stringify(row.effective), run_revision: row.revision, started_at: trx.fn.now(), finished_at: null };
    const work = workOfRole(row.kind, expected);
    if (work.kind === 'satisfied') {
      await apply(row, 'satisfied', { ...ran, error: null, finished_at: trx.fn.now() });
      settled = true;
      continue;
    }
    let problem = work.kind === 'refused' ? work.problem : null;
    if (work.kind === 'operation' && (work.operation === 'deploy' || work.operation === 'rebuild')) {
      images ??= await registeredImages(trx);
      const problems = osInstallProblems(row.effective.image, node, images);
      if (problems.length > 0) problem = `${row.hostname}: ${problems.join('; ')}`;
    }
    if (problem) {
      await apply(row, 'refused', { ...ran, error: problem, finished_at: trx.fn.now() });
      settled = true;
      continue;
    }
    if (work.kind !== 'operation') continue;
    const [op] = await trx('operations')
      .insert({ task_id: row.task_id, hostname: row.hostname, kind: work.operation, status: 'queued', extra_vars: JSON.stringify(row.effective), noderole_id: row.id })
      .returning('id');
    if (work.operation === 'deploy' || work.operation === 'rebuild') {
      const image = row.effective.image as string;
      await holdImage(trx, image);
      await createInstalls(trx, [{ operationId: Number(op.id), taskId: row.task_id!, hostname: row.hostname, image }]);
    }
    await apply(row, 'start', { ...ran, operation_id: op.id, error: null, runs: trx.raw('runs + 1') });
    await trx('tasks').where({ id: row.task_id, status: 'queued' }).update({ status: 'running', started_at: trx.fn.now(), updated_at: trx.fn.now() });
    // The next role of this node is judged after this one's operation.
    if (work.operation !== 'role') pending.set(row.hostname, work.operation);
  }
  return settled;
}


/** Ends the deployment's open anneal tasks whose noderoles have all settled: succeeded when every one is active. */
async function finishSettledTasks(trx: Knex.Transaction, deployment: string): Promise<void> {
  const open: { id: string }[] = await trx('tasks')
    .select('id')
    .where({ kind: 'anneal' })
    .whereIn('status', ['queued', 'running'])
    .whereRaw("details->>'deployment' = ?", [deployment]);
  for (const task of open) {
    const states: { state: NoderoleState; n: string }[] = await trx('noderoles').select('state').count({ n: '*' }).where({ task_id: task.id }).groupBy('state');
    if (states.some((s) => !SETTLED_STATES.includes(s.state))) continue;
    const failed = await trx('noderoles').select('id', 'role', 'hostname', 'state', 'error').where({ task_id: task.id }).whereNot({ state: 'active' }).orderBy('id').limit(20);
    const count = (state: NoderoleState) => Number(states.find((s) => s.state === state)?.n ?? 0);
    const now = trx.fn.now();
    await trx('tasks')
      .where({ id: task.id })
      .update({
        status: failed.length > 0 ? 'failed' : 'succeeded',
        error: failed.length > 0 ? failed.map((f) => `${f.role} on ${f.hostname} ${f.state}: ${f.error}`).join('; ') : null,
        result: JSON.stringify({ active: count('active'), error: count('error'), blocked: count('blocked') }),
        started_at: trx.raw('coalesce(started_at, now())'),
        finished_at: now,
        updated_at: now,
      });
  }
}
