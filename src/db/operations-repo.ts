import type { Knex } from 'knex';
import { BulkRefused, type BulkOffender } from '../domain/errors';
import { holdImage } from '../images/images-repo';
import { createInstalls } from '../provisioning/installs-repo';
import { discoverWorkflowId } from '../../workflows/definitions';
import { allowedVerbs, INSTALL_KINDS, nextState, operationTarget, slotPoolOf, type NodeQueueKind, type NodeState, type OperationKind, type SlotPool } from '../domain/states';

/**
 * The operation queue (OpenCrowbar's "one task per node, at most N in flight", kept in PostgreSQL).
 * Rows are ordered by id, the global submission order; a node runs its rows in that order, one at a
 * time; a row must hold one of the cluster's `cap` slots while it does work on its node. Every decision
 * is taken under one advisory lock, so the rules hold with any number of workers and across restarts.
 */
const SCHEDULER_LOCK = 7_270_001;
export const OPEN_STATUSES = ['queued', 'running', 'waiting'] as const;
export type OperationStatus = 'queued' | 'running' | 'waiting' | 'succeeded' | 'failed';

/** What the queue runs: a node's operation, or a discovery (an address, no node yet) taking a general slot. */
export type QueueKind = NodeQueueKind | 'discover';
/**
 * What a bulk task's rows can be: queue rows, or a bulk accept's (src/db/bulk-accept-repo.ts). An accept
 * row is worked by its task's own workflow, never claimed by the node, and takes no slot.
 */
export type BulkKind = OperationKind | 'discover' | 'accept';

export interface OperationRecord {
  id: number;
  taskId: string;
  /** null for a discovery: its node is named by the join (see `address`). */
  hostname: string | null;
  kind: BulkKind | 'role';
  status: OperationStatus;
  extraVars: Record<string, unknown>;
  error: string | null;
  result: Record<string, unknown> | null;
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
  /** The noderole a deployment's annealer queued this row for. */
  noderoleId: number | null;
  /** A discovery's address and the step it is at (or failed in). */
  address?: string;
  step?: string | null;
}

function toOperation(row: any): OperationRecord {
  return {
    ...(row.address ? { address: row.address, step: row.step } : {}),
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
    noderoleId: row.noderole_id === null || row.noderole_id === undefined ? null : Number(row.noderole_id),
  };
}

export async function lockScheduler(trx: Knex.Transaction): Promise<void> {
  await trx.raw('select pg_advisory_xact_lock(?)', [SCHEDULER_LOCK]);
}

export interface BulkRequest {
  taskId: string;
  kind: OperationKind;
  hostnames: string[];
  extraVars: Record<string, unknown>;
  /** The image an install writes (deploy, rebuild). */
  image?: string;
}

/**
 * Validates a whole request and queues it, or refuses it naming every offender; all in one
 * transaction, so a refused request leaves nothing behind. A node is judged by the state it will be in
 * once the operations already queued on it have run.
 */
export async function submitBulk(knex: Knex, request: BulkRequest): Promise<void> {
  await knex.transaction(async (trx) => {
    await lockScheduler(trx);
    const nodes = await installFacts(trx, request.hostnames);
    const nodeOf = new Map(nodes.map((n) => [n.hostname, n]));
    const install = INSTALL_KINDS.includes(request.kind);
    if (install && !request.image) throw new Error(`a ${request.kind} request names its image`);
    const lastQueued = await lastQueuedChanges(trx, request.hostnames);

    const offenders: BulkOffender[] = [];
    for (const hostname of request.hostnames) {
      const node = nodeOf.get(hostname);
      if (!node) {
        offenders.push({ node: hostname, problem: 'unknown node' });
        continue;
      }
      const state = node.state;
      const unfit = install ? installProblem(node) : null;
      if (unfit) {
        offenders.push({ node: hostname, problem: unfit });
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
      details: JSON.stringify({ nodes: request.hostnames.length, extra_vars: request.extraVars, ...(request.image ? { image: request.image } : {}) }),
    });
    const extraVars = JSON.stringify(request.extraVars);
    // The image cannot be deleted under installs that are being queued (a delete waits, then sees them).
    if (install) await holdImage(trx, request.image!);
    for (let i = 0; i < request.hostnames.length; i += 1000) {
      const rows: { id: string | number; hostname: string }[] = await trx('operations')
        .insert(
          request.hostnames.slice(i, i + 1000).map((hostname) => ({
            task_id: request.taskId,
            hostname,
            kind: request.kind,
            status: 'queued',
            extra_vars: extraVars,
          })),
        )
        .returning(['id', 'hostname']);
      if (install) {
        await createInstalls(trx, rows.map((r) => ({ operationId: Number(r.id), taskId: request.taskId, hostname: r.hostname, image: request.image! })));
      }
    }
  });
}

export interface InstallFacts {
  hostname: string;
  state: NodeState;
  driver: string | null;
  has_port: boolean;
}

/** What decides whether nodes can be installed: their state, driver and boot port. */
export async function installFacts(trx: Knex.Transaction, hostnames: string[]): Promise<InstallFacts[]> {
  return trx('nodes')
    .select('hostname', 'state', 'driver', trx.raw('exists (select 1 from node_ports p where p.hostname = nodes.hostname) as has_port'))
    .whereRaw('hostname = any(?)', [hostnames]);
}

/** An install power-cycles through the BMC and boots the node's MAC from the network: no state mends their lack. */
export function installProblem(node: InstallFacts): string | null {
  if (node.driver !== 'ipmi') return `has no BMC (driver ${node.driver ?? 'none'}; an install needs ipmi)`;
  if (!node.has_port) return 'has no port MAC to boot from';
  return null;
}

/**
 * Each node's last open operation that changes its state: a node is judged by the state it will be in
 * once those have run. A script role changes no state, so it is passed over.
 */
export async function lastQueuedChanges(trx: Knex.Transaction, hostnames: string[]): Promise<Map<string, OperationKind>> {
  const queued = await trx('operations')
    .distinctOn('hostname')
    .select('hostname', 'kind')
    .whereIn('status', OPEN_STATUSES)
    .whereNot({ kind: 'role' })
    .whereRaw('hostname = any(?)', [hostnames])
    .orderBy([{ column: 'hostname' }, { column: 'id', order: 'desc' }]);
  return new Map<string, OperationKind>(queued.map((q) => [q.hostname, q.kind]));
}

/** Withdraws a request whose workflow could not be started; rows a node already took are left to run. */
export async function withdrawBulk(knex: Knex, taskId: string, reason: string): Promise<void> {
  await knex.transaction(async (trx) => {
    await lockScheduler(trx);
    await trx('operations').where({ task_id: taskId, status: 'queued' }).update({ status: 'failed', error: reason, finished_at: new Date() });
    await trx('installs').where({ task_id: taskId, status: 'queued' }).update({ status: 'failed', error: reason, finished_at: new Date() });
    await trx('tasks').where({ id: taskId }).update({ status: 'failed', error: reason, finished_at: new Date(), updated_at: new Date() });
  });
}

/**
 * The node's next operation: the oldest open row for it. A queued row becomes running (the node is
 * now taken); a running or waiting row is returned as it is, so a resumed workflow picks up its own.
 */
export async function claimNextOperation(knex: Knex, hostname: string): Promise<OperationRecord | undefined> {
  return knex.transaction(async (trx) => {
    // A bulk accept's row is its task's to work (the node has no workflow before it): never the node's.
    const row = await trx('operations').where({ hostname }).whereNot({ kind: 'accept' }).whereIn('status', OPEN_STATUSES).orderBy('id').first().forUpdate();
    if (!row) return undefined;
    if (row.status !== 'queued') return toOperation(row);
    const now = new Date();
    const [claimed] = await trx('operations').where({ id: row.id }).update({ status: 'running', started_at: now }).returning('*');
    await trx('tasks').where({ id: row.task_id, status: 'queued' }).update({ status: 'running', started_at: now, updated_at: now });
    return toOperation(claimed);
  });
}

/** The caps of the slot pools: installs have their own (MAX_CONCURRENT_DEPLOYS), all else shares one. */
export type SlotCaps = Record<SlotPool, number>;

/** Rows of one pool: installs, or everything else. */
function inPool<Q extends Knex.QueryBuilder>(query: Q, pool: SlotPool): Q {
  return (pool === 'install' ? query.whereIn('kind', INSTALL_KINDS) : query.whereNotIn('kind', INSTALL_KINDS)) as Q;
}

/** Hands a pool's free slots to its longest-waiting rows; returns who got one. Call under the scheduler lock. */
async function grantFreeSlots(trx: Knex.Transaction, pool: SlotPool, cap: number): Promise<{ id: number; hostname: string }[]> {
  const holders = await inPool(trx('operations').where({ holds_slot: true }), pool).count({ count: '*' }).first();
  const free = cap - Number(holders?.count ?? 0);
  if (free <= 0) return [];
  const next = await inPool(trx('operations').select('id', 'hostname').whereNotNull('wants_slot_since').where({ holds_slot: false }), pool)
    .orderBy([{ column: 'wants_slot_since' }, { column: 'id' }])
    .limit(free);
  if (next.length === 0) return [];
  await trx('operations')
    .whereIn('id', next.map((r) => r.id))
    .update({ holds_slot: true, wants_slot_since: null });
  return next.map((r) => ({ id: Number(r.id), hostname: wakeTargetOf(r) }));
}

/** Who to wake for a granted slot: the node's hostname, or the discovery's own workflow (see slotHolderWorkflowId). */
function wakeTargetOf(row: { id: string | number; hostname: string | null }): string {
  return row.hostname ?? discoverWorkflowId(Number(row.id));
}

/**
 * Asks for a slot. Granted at once when one is free and nobody asked earlier; otherwise the row waits
 * its turn and is handed a slot by a release. `wake` lists other nodes granted a slot by this call.
 */
export async function requestSlot(knex: Knex, operationId: number, caps: SlotCaps): Promise<{ granted: boolean; wake: string[] }> {
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
    const pool = slotPoolOf(op.kind as QueueKind);
    const grants = await grantFreeSlots(trx, pool, caps[pool]);
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
export async function releaseSlot(knex: Knex, operationId: number, caps: SlotCaps): Promise<string[]> {
  return knex.transaction(async (trx) => {
    await lockScheduler(trx);
    const op = await trx('operations').where({ id: operationId }).first();
    if (!op) throw new Error(`operation ${operationId} does not exist`);
    if (!op.holds_slot) {
      // A row that gave up waiting (an aborted install) withdraws its request, so no slot is handed to it.
      if (op.wants_slot_since !== null) await trx('operations').where({ id: operationId }).update({ wants_slot_since: null });
      return op.handed_to ?? [];
    }
    await trx('operations').where({ id: operationId }).update({ holds_slot: false, wants_slot_since: null });
    const pool = slotPoolOf(op.kind as QueueKind);
    const handedTo = (await grantFreeSlots(trx, pool, caps[pool])).map((g) => g.hostname);
    await trx('operations').where({ id: operationId }).update({ handed_to: handedTo });
    return handedTo;
  });
}

/** The operation's own work is done; it keeps its node until the request's outcome is known. */
export async function markWaiting(knex: Knex, operationId: number, error: string | null, result: Record<string, unknown>): Promise<void> {
  await knex('operations').where({ id: operationId }).update({ status: 'waiting', error, result: JSON.stringify(result) });
}

/** Ends a row; returns the noderole it runs (a deployment's annealer queued it), or null. */
export async function finishOperation(
  knex: Knex,
  operationId: number,
  outcome: { status: 'succeeded' | 'failed'; error: string | null; result?: Record<string, unknown> },
): Promise<number | null> {
  const changes: Record<string, unknown> = { status: outcome.status, error: outcome.error, finished_at: new Date() };
  if (outcome.result) changes.result = JSON.stringify(outcome.result);
  const [row] = await knex('operations').where({ id: operationId }).update(changes).returning('noderole_id');
  return row?.noderole_id === null || row?.noderole_id === undefined ? null : Number(row.noderole_id);
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
  const rows = await knex('operations as o')
    .leftJoin('discoveries as d', 'd.operation_id', 'o.id')
    .select('o.*', 'd.address', 'd.step', knex.raw('coalesce(o.hostname, d.hostname) as hostname'))
    .where('o.task_id', taskId)
    .orderBy('o.id')
    .limit(page.limit)
    .offset(page.offset);
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

/**
 * Which of a request's rows a wave wakes, and which of the woken count as still moving:
 * - `step` (operationsQueued): every row; a woken row counts until it is through its step: queued with
 *   nothing of its node's ahead of it (an accept included), or running and not yet past its slot (a
 *   release records `handed_to`, so a running row without it is claimed, asking for a slot or holding
 *   one). A row queued behind its node's earlier work, or past its step (waiting for the request's
 *   decision, or initializing after an install), does not count: it would hold a place without moving.
 * - `decision` (a commission's groupDecision): the rows still open; a woken row counts until it finishes
 *   (a commit's transition, or a rollback's cleanup, which takes a slot again).
 */
export type WaveStage = 'step' | 'decision';

/**
 * The next rows a bulk request wakes, so that at most `window` of its woken rows (ids up to `afterId`)
 * are still moving (see WaveStage). `last` says that no row is left to wake after these.
 */
export async function nextWave(
  knex: Knex,
  taskId: string,
  page: { afterId: number; window: number; stage: WaveStage },
): Promise<{ wake: { id: number; hostname: string }[]; last: boolean }> {
  // A decision goes to the rows still open after their step; a step to every row.
  const statuses: OperationStatus[] | undefined = page.stage === 'decision' ? ['waiting', 'running'] : undefined;
  const woken = knex('operations as o').where('o.task_id', taskId).where('o.id', '<=', page.afterId);
  if (statuses) woken.whereIn('o.status', statuses);
  else {
    // Both branches keep to queued and running rows: the partial index operations_task_unfinished.
    woken.whereIn('o.status', ['queued', 'running']).where((row) =>
      row
        .where((running) => running.where('o.status', 'running').whereNull('o.handed_to'))
        .orWhere((queued) =>
          queued.where('o.status', 'queued').whereNotExists(
            knex('operations as ahead').whereRaw('ahead.hostname = o.hostname').whereRaw('ahead.id < o.id').whereIn('ahead.status', OPEN_STATUSES),
          ),
        ),
    );
  }
  const moving = await woken.count({ count: '*' }).first();
  const room = page.window - Number(moving?.count ?? 0);
  if (room <= 0) {
    // A full window after the last wave (a retry of an attempt that woke it) is still the end.
    const left = await hostnamesOfTask(knex, taskId, { afterId: page.afterId, limit: 1, statuses });
    return { wake: [], last: left.length === 0 };
  }
  // One more than there is room for tells whether any is left after these.
  const next = await hostnamesOfTask(knex, taskId, { afterId: page.afterId, limit: room + 1, statuses });
  return { wake: next.slice(0, room), last: next.length <= room };
}
