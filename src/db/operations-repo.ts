import type { Knex } from 'knex';
import { BulkRefused, type BulkOffender } from '../domain/errors';
import { allowedVerbs, nextState, operationTarget, type NodeState, type OperationKind } from '../domain/states';

/**
 * The operation queue (OpenCrowbar's "one task per node, at most N in flight", kept in PostgreSQL).
 * Rows are ordered by id, the global submission order; a node runs its rows in that order, one at a
 * time; a row must hold one of the cluster's `cap` slots while it does work on its node. Every decision
 * is taken under one advisory lock, so the rules hold with any number of workers and across restarts.
 */
const SCHEDULER_LOCK = 7_270_001;
const OPEN_STATUSES = ['queued', 'running', 'waiting'] as const;
export type OperationStatus = 'queued' | 'running' | 'waiting' | 'succeeded' | 'failed';

export interface OperationRecord {
  id: number;
  taskId: string;
  hostname: string;
  kind: OperationKind;
  status: OperationStatus;
  extraVars: Record<string, unknown>;
  error: string | null;
  result: Record<string, unknown> | null;
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
}

function toOperation(row: any): OperationRecord {
  return {
    id: Number(row.id),
    taskId: row.task_id,
    hostname: row.hostname,
    kind: row.kind,
    status: row.status,
    extraVars: row.extra_vars,
    error: row.error,
    result: row.result,
    createdAt: row.created_at,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
  };
}

async function lockScheduler(trx: Knex.Transaction): Promise<void> {
  await trx.raw('select pg_advisory_xact_lock(?)', [SCHEDULER_LOCK]);
}

export interface BulkRequest {
  taskId: string;
  kind: OperationKind;
  hostnames: string[];
  extraVars: Record<string, unknown>;
}

/**
 * Validates a whole request and queues it, or refuses it naming every offender; all in one
 * transaction, so a refused request leaves nothing behind. A node is judged by the state it will be in
 * once the operations already queued on it have run.
 */
export async function submitBulk(knex: Knex, request: BulkRequest): Promise<void> {
  await knex.transaction(async (trx) => {
    await lockScheduler(trx);
    const nodes = await trx('nodes').select('hostname', 'state').whereRaw('hostname = any(?)', [request.hostnames]);
    const stateOf = new Map<string, NodeState>(nodes.map((n) => [n.hostname, n.state]));
    const queued = await trx('operations')
      .distinctOn('hostname')
      .select('hostname', 'kind')
      .whereIn('status', OPEN_STATUSES)
      .whereRaw('hostname = any(?)', [request.hostnames])
      .orderBy([{ column: 'hostname' }, { column: 'id', order: 'desc' }]);
    const lastQueued = new Map<string, OperationKind>(queued.map((q) => [q.hostname, q.kind]));

    const offenders: BulkOffender[] = [];
    for (const hostname of request.hostnames) {
      const state = stateOf.get(hostname);
      if (!state) {
        offenders.push({ node: hostname, problem: 'unknown node' });
        continue;
      }
      const pending = lastQueued.get(hostname);
      const expected = pending ? operationTarget(pending) : state;
      if (!nextState(expected, request.kind)) {
        offenders.push({
          node: hostname,
          problem: pending ? `will be ${expected} after its queued ${pending}` : `is ${state}`,
          state: expected,
          allowed: allowedVerbs(expected),
        });
      }
    }
    if (offenders.length > 0) throw new BulkRefused(request.kind, offenders);

    await trx('tasks').insert({
      id: request.taskId,
      kind: request.kind,
      hostname: null,
      status: 'queued',
      details: JSON.stringify({ nodes: request.hostnames.length, extra_vars: request.extraVars }),
    });
    const extraVars = JSON.stringify(request.extraVars);
    for (let i = 0; i < request.hostnames.length; i += 1000) {
      await trx('operations').insert(
        request.hostnames.slice(i, i + 1000).map((hostname) => ({
          task_id: request.taskId,
          hostname,
          kind: request.kind,
          status: 'queued',
          extra_vars: extraVars,
        })),
      );
    }
  });
}

/** Withdraws a request whose workflow could not be started; rows a node already took are left to run. */
export async function withdrawBulk(knex: Knex, taskId: string, reason: string): Promise<void> {
  await knex.transaction(async (trx) => {
    await lockScheduler(trx);
    await trx('operations').where({ task_id: taskId, status: 'queued' }).update({ status: 'failed', error: reason, finished_at: new Date() });
    await trx('tasks').where({ id: taskId }).update({ status: 'failed', error: reason, finished_at: new Date(), updated_at: new Date() });
  });
}

/**
 * The node's next operation: the oldest open row for it. A queued row becomes running (the node is
 * now taken); a running or waiting row is returned as it is, so a resumed workflow picks up its own.
 */
export async function claimNextOperation(knex: Knex, hostname: string): Promise<OperationRecord | undefined> {
  return knex.transaction(async (trx) => {
    const row = await trx('operations').where({ hostname }).whereIn('status', OPEN_STATUSES).orderBy('id').first().forUpdate();
    if (!row) return undefined;
    if (row.status !== 'queued') return toOperation(row);
    const now = new Date();
    const [claimed] = await trx('operations').where({ id: row.id }).update({ status: 'running', started_at: now }).returning('*');
    await trx('tasks').where({ id: row.task_id, status: 'queued' }).update({ status: 'running', started_at: now, updated_at: now });
    return toOperation(claimed);
  });
}

/** Hands free slots to the longest-waiting rows; returns who got one. Call under the scheduler lock. */
async function grantFreeSlots(trx: Knex.Transaction, cap: number): Promise<{ id: number; hostname: string }[]> {
  const holders = await trx('operations').where({ holds_slot: true }).count({ count: '*' }).first();
  const free = cap - Number(holders?.count ?? 0);
  if (free <= 0) return [];
  const next = await trx('operations')
    .select('id', 'hostname')
    .whereNotNull('wants_slot_since')
    .where({ holds_slot: false })
    .orderBy([{ column: 'wants_slot_since' }, { column: 'id' }])
    .limit(free);
  if (next.length === 0) return [];
  await trx('operations')
    .whereIn('id', next.map((r) => r.id))
    .update({ holds_slot: true, wants_slot_since: null });
  return next.map((r) => ({ id: Number(r.id), hostname: r.hostname }));
}

/**
 * Asks for a slot. Granted at once when one is free and nobody asked earlier; otherwise the row waits
 * its turn and is handed a slot by a release. `wake` lists other nodes granted a slot by this call.
 */
export async function requestSlot(knex: Knex, operationId: number, cap: number): Promise<{ granted: boolean; wake: string[] }> {
  return knex.transaction(async (trx) => {
    await lockScheduler(trx);
    const op = await trx('operations').where({ id: operationId }).first();
    if (!op) throw new Error(`operation ${operationId} does not exist`);
    if (op.holds_slot) return { granted: true, wake: [] };
    if (op.wants_slot_since === null) {
      await trx('operations')
        .where({ id: operationId })
        .update({ wants_slot_since: trx.raw('(extract(epoch from clock_timestamp()) * 1000000)::bigint') });
    }
    const grants = await grantFreeSlots(trx, cap);
    return {
      granted: grants.some((g) => g.id === operationId),
      wake: grants.filter((g) => g.id !== operationId).map((g) => g.hostname),
    };
  });
}

/**
 * Gives the slot back and hands free slots to the next rows in line; returns their nodes, to be woken.
 * A retried release returns the same nodes again, so a wake-up lost to a crash is sent on the retry.
 */
export async function releaseSlot(knex: Knex, operationId: number, cap: number): Promise<string[]> {
  return knex.transaction(async (trx) => {
    await lockScheduler(trx);
    const op = await trx('operations').where({ id: operationId }).first();
    if (!op) throw new Error(`operation ${operationId} does not exist`);
    if (!op.holds_slot) return op.handed_to ?? [];
    await trx('operations').where({ id: operationId }).update({ holds_slot: false, wants_slot_since: null });
    const handedTo = (await grantFreeSlots(trx, cap)).map((g) => g.hostname);
    await trx('operations').where({ id: operationId }).update({ handed_to: handedTo });
    return handedTo;
  });
}

/** The operation's own work is done; it keeps its node until the request's outcome is known. */
export async function markWaiting(knex: Knex, operationId: number, error: string | null, result: Record<string, unknown>): Promise<void> {
  await knex('operations').where({ id: operationId }).update({ status: 'waiting', error, result: JSON.stringify(result) });
}

export async function finishOperation(
  knex: Knex,
  operationId: number,
  outcome: { status: 'succeeded' | 'failed'; error: string | null; result?: Record<string, unknown> },
): Promise<void> {
  const changes: Record<string, unknown> = { status: outcome.status, error: outcome.error, finished_at: new Date() };
  if (outcome.result) changes.result = JSON.stringify(outcome.result);
  await knex('operations').where({ id: operationId }).update(changes);
}

export interface TaskProgress {
  total: number;
  queued: number;
  running: number;
  waiting: number;
  succeeded: number;
  failed: number;
  /** Rows whose own step failed (waiting or failed, with an error): they decide a commission's rollback. */
  stepFailures: number;
}

export async function taskProgress(knex: Knex, taskId: string): Promise<TaskProgress> {
  const rows = await knex('operations')
    .select('status')
    .count({ count: '*' })
    .sum({ step_failures: knex.raw("case when error is not null and status in ('waiting', 'failed') then 1 else 0 end") })
    .where({ task_id: taskId })
    .groupBy('status');
  const progress: TaskProgress = { total: 0, queued: 0, running: 0, waiting: 0, succeeded: 0, failed: 0, stepFailures: 0 };
  for (const r of rows as { status: string; count: string; step_failures: string | null }[]) {
    const n = Number(r.count);
    progress.total += n;
    progress[r.status as OperationStatus] = n;
    progress.stepFailures += Number(r.step_failures ?? 0);
  }
  return progress;
}

/** Records a commission request's outcome once; later calls return the first decision. */
export async function decide(knex: Knex, taskId: string, decision: 'commit' | 'rollback'): Promise<'commit' | 'rollback'> {
  await knex('tasks').where({ id: taskId }).whereNull('decision').update({ decision, updated_at: new Date() });
  return (await knex('tasks').select('decision').where({ id: taskId }).first()).decision;
}

export async function getDecision(knex: Knex, taskId: string): Promise<'commit' | 'rollback' | null> {
  const row = await knex('tasks').select('decision', 'status').where({ id: taskId }).first();
  if (row?.status === 'failed' && !row.decision) return 'rollback';
  return row?.decision ?? null;
}

export async function operationsOfTask(knex: Knex, taskId: string, page: { limit: number; offset: number }): Promise<OperationRecord[]> {
  const rows = await knex('operations').where({ task_id: taskId }).orderBy('id').limit(page.limit).offset(page.offset);
  return rows.map(toOperation);
}

export async function openOperationsOf(knex: Knex, hostname: string): Promise<OperationRecord[]> {
  return (await knex('operations').where({ hostname }).whereIn('status', OPEN_STATUSES).orderBy('id')).map(toOperation);
}

export async function hostnamesOfTask(knex: Knex, taskId: string, page: { afterId: number; limit: number; statuses?: OperationStatus[] }) {
  const query = knex('operations').select('id', 'hostname').where({ task_id: taskId }).where('id', '>', page.afterId).orderBy('id').limit(page.limit);
  if (page.statuses) query.whereIn('status', page.statuses);
  return (await query).map((r) => ({ id: Number(r.id), hostname: r.hostname as string }));
}
