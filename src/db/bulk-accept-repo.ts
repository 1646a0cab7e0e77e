import type { Knex } from 'knex';
import { BulkRefused, type BulkOffender } from '../domain/errors';
import { allowedVerbs, type NodeState } from '../domain/states';
import { lockScheduler, OPEN_STATUSES, taskProgress, type TaskProgress } from './operations-repo';

/**
 * A bulk accept (salt-key -A) in the operation table: one task, one row per node with kind 'accept'.
 * The row's result carries the fingerprint asked for, then the node's own accept task, whose end (the
 * node active, or initialization failed) is the row's end. The rows are worked by the task's workflow
 * (workflows/bulk-operation.ts), never claimed by a node: an unmanaged node has no workflow yet.
 */
export interface AcceptEntry {
  hostname: string;
  fingerprint: string;
}

/** An offender of a refused bulk accept: the keys that do claim the host, or the request accepting it already. */
type AcceptOffender = BulkOffender & { fingerprints?: string[]; task_id?: string };

/** What an accept row's result holds. */
export interface AcceptRowResult {
  fingerprint: string;
  /** The node's accept task (tasks.id), once the node took the key. */
  accept_task_id?: string;
  /** Set when another request had accepted the node under the same key first. */
  accepted_by_other?: boolean;
}

/**
 * Validates the whole request and queues it, or refuses it naming every offender, in one transaction:
 * a refused request leaves nothing behind. Taken under the scheduler lock, so two requests cannot queue
 * the same host.
 */
export async function submitBulkAccept(knex: Knex, taskId: string, entries: AcceptEntry[]): Promise<void> {
  await knex.transaction(async (trx) => {
    await lockScheduler(trx);
    const hostnames = entries.map((e) => e.hostname);
    const nodes: { hostname: string; state: NodeState }[] = await trx('nodes').select('hostname', 'state').whereRaw('hostname = any(?)', [hostnames]);
    const stateOf = new Map(nodes.map((n) => [n.hostname, n.state]));
    const claims: { hostname: string; fingerprint: string }[] = await trx('node_claims')
      .select('hostname', 'fingerprint')
      .where({ status: 'pending' })
      .whereRaw('hostname = any(?)', [hostnames])
      .orderBy([{ column: 'hostname' }, { column: 'first_seen_at' }, { column: 'fingerprint' }]);
    const pendingOf = new Map<string, string[]>();
    for (const c of claims) pendingOf.set(c.hostname, [...(pendingOf.get(c.hostname) ?? []), c.fingerprint]);
    const open: { hostname: string; task_id: string }[] = await trx('operations')
      .select('hostname', 'task_id')
      .where({ kind: 'accept' })
      .whereIn('status', OPEN_STATUSES)
      .whereRaw('hostname = any(?)', [hostnames]);
    const openTaskOf = new Map(open.map((o) => [o.hostname, o.task_id]));

    const offenders: AcceptOffender[] = [];
    for (const { hostname, fingerprint } of entries) {
      const problem = acceptProblem(stateOf.get(hostname), pendingOf.get(hostname) ?? [], fingerprint, openTaskOf.get(hostname));
      if (problem) offenders.push({ node: hostname, ...problem });
    }
    if (offenders.length > 0) throw new BulkRefused('accept', offenders);

    await trx('tasks').insert({ id: taskId, kind: 'accept', hostname: null, status: 'queued', details: JSON.stringify({ nodes: entries.length }) });
    for (let i = 0; i < entries.length; i += 1000) {
      await trx('operations').insert(
        entries.slice(i, i + 1000).map((e) => ({
          task_id: taskId,
          hostname: e.hostname,
          kind: 'accept',
          status: 'queued',
          extra_vars: '{}',
          result: JSON.stringify({ fingerprint: e.fingerprint } satisfies AcceptRowResult),
        })),
      );
    }
  });
}

/** Why one entry cannot be accepted, in the words of a bulk refusal; undefined when it can. */
function acceptProblem(state: NodeState | undefined, pending: string[], fingerprint: string, openTask: string | undefined): Omit<AcceptOffender, 'node'> | undefined {
  // The wording of an unknown node is the one BulkRefused answers 404 for.
  if (state === undefined) return { problem: 'unknown node' };
  if (state !== 'unmanaged') return { problem: `is ${state}: it was accepted already`, state, allowed: allowedVerbs(state) };
  if (pending.length === 0) return { problem: 'has no pending claim (every key that announced it was rejected)', state, fingerprints: [] };
  if (!pending.includes(fingerprint)) {
    return { problem: `no pending claim has fingerprint ${fingerprint}; it is claimed by ${pending.join(', ')}`, state, fingerprints: pending };
  }
  if (openTask) return { problem: `is being accepted already, by task ${openTask}`, state, task_id: openTask };
  return undefined;
}

/** The next queued rows of a bulk accept, in submission order. */
export async function queuedAccepts(knex: Knex, taskId: string, limit: number): Promise<{ id: number; hostname: string; fingerprint: string }[]> {
  const rows: { id: string | number; hostname: string; result: AcceptRowResult }[] = await knex('operations')
    .select('id', 'hostname', 'result')
    .where({ task_id: taskId, status: 'queued' })
    .orderBy('id')
    .limit(limit);
  return rows.map((r) => ({ id: Number(r.id), hostname: r.hostname, fingerprint: r.result.fingerprint }));
}

/**
 * Where the node stands after its accept was sent (or found unsendable): running and following the
 * node's accept task when the node now holds the key asked for, else failed, saying why. Decided by the
 * fingerprint, so a claim that changed under the request never counts as accepted. Idempotent: a row
 * that left queued is left alone.
 */
export async function settleAccept(knex: Knex, row: { id: number; taskId: string; hostname: string; fingerprint: string }, sentByUs: boolean): Promise<'running' | 'succeeded' | 'failed'> {
  return knex.transaction(async (trx) => {
    const node: { state: NodeState; fingerprint: string } | undefined = await trx('nodes').select('state', 'fingerprint').where({ hostname: row.hostname }).first();
    const now = new Date();
    if (node && node.state !== 'unmanaged' && node.fingerprint === row.fingerprint) {
      const accepted: { task_id: string | null; cause: string } | undefined = await trx('node_events')
        .select('task_id', 'cause')
        .where({ hostname: row.hostname, type: 'transition', event: 'accept' })
        .orderBy('id', 'desc')
        .first();
      const result: AcceptRowResult = {
        fingerprint: row.fingerprint,
        ...(accepted?.task_id ? { accept_task_id: accepted.task_id } : {}),
        ...(sentByUs && accepted?.cause === acceptCause(row.taskId) ? {} : { accepted_by_other: true }),
      };
      // Without the node's task (not expected: the accept event carries it) there is nothing to follow.
      const status = result.accept_task_id ? 'running' : 'succeeded';
      await trx('operations')
        .where({ id: row.id, status: 'queued' })
        .update({ status, started_at: now, ...(status === 'succeeded' ? { finished_at: now } : {}), result: JSON.stringify(result) });
      await trx('tasks').where({ id: row.taskId, status: 'queued' }).update({ status: 'running', started_at: now, updated_at: now });
      return status;
    }
    const error = await whyNotAccepted(trx, row, node);
    await trx('operations').where({ id: row.id, status: 'queued' }).update({ status: 'failed', error, started_at: now, finished_at: now });
    await trx('tasks').where({ id: row.taskId, status: 'queued' }).update({ status: 'running', started_at: now, updated_at: now });
    return 'failed';
  });
}

/** Whether a node can still be accepted under this key now (the same check the accept transition makes). */
export async function stillAcceptable(knex: Knex, hostname: string, fingerprint: string): Promise<boolean> {
  const row = await knex('nodes as n')
    .join('node_claims as c', 'c.hostname', 'n.hostname')
    .where({ 'n.hostname': hostname, 'n.state': 'unmanaged', 'c.fingerprint': fingerprint, 'c.status': 'pending' })
    .first('n.hostname');
  return row !== undefined;
}

async function whyNotAccepted(trx: Knex.Transaction, row: { hostname: string; fingerprint: string }, node: { state: NodeState; fingerprint: string } | undefined): Promise<string> {
  if (!node) return 'not accepted: the node was deleted meanwhile';
  if (node.state !== 'unmanaged') return `not accepted: it was accepted meanwhile under another key (${node.fingerprint}), and is ${node.state}`;
  const claim: { status: string } | undefined = await trx('node_claims').select('status').where({ hostname: row.hostname, fingerprint: row.fingerprint }).first();
  if (!claim) return `not accepted: no key ${row.fingerprint} claims it any more`;
  if (claim.status !== 'pending') return `not accepted: the claim of ${row.fingerprint} was ${claim.status} meanwhile`;
  return `not accepted: the accept of ${row.fingerprint} did not take effect; the node is still unmanaged`;
}

/** The cause a bulk accept writes on each node's accept event: the node's history names the request. */
export function acceptCause(taskId: string): string {
  return `accepted by bulk request ${taskId}`;
}

/**
 * Ends the running rows whose node's accept task ended (the node active, or its initialization failed),
 * with that task's outcome, and returns the request's progress.
 */
export async function followAccepts(knex: Knex, taskId: string): Promise<TaskProgress> {
  await knex.raw(
    `update operations o
        set status = t.status, error = case when t.status = 'failed' then coalesce(t.error, 'initialization failed') end, finished_at = coalesce(t.finished_at, now())
       from tasks t
      where o.task_id = ? and o.kind = 'accept' and o.status = 'running'
        and t.id = (o.result->>'accept_task_id')::uuid and t.status in ('succeeded', 'failed')`,
    [taskId],
  );
  return taskProgress(knex, taskId);
}
