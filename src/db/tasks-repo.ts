import type { Knex } from 'knex';
import { RequestExpired } from '../domain/errors';
import { exactTime, keysetPage, type Page, type PageRequest } from './page';

export const TASK_STATUSES = ['queued', 'running', 'succeeded', 'failed'] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];

export interface TaskRecord {
  id: string;
  kind: string;
  hostname: string | null;
  status: TaskStatus;
  error: string | null;
  result: Record<string, unknown> | null;
  details: Record<string, unknown> | null;
  decision: string | null;
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
  updatedAt: Date;
}

interface TaskRow {
  id: string;
  kind: string;
  hostname: string | null;
  status: TaskStatus;
  error: string | null;
  result: Record<string, unknown> | null;
  details: Record<string, unknown> | null;
  decision: string | null;
  created_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  updated_at: Date;
}

function toTask(row: TaskRow): TaskRecord {
  return {
    id: row.id,
    kind: row.kind,
    hostname: row.hostname,
    status: row.status,
    error: row.error,
    result: row.result,
    details: row.details,
    decision: row.decision,
    createdAt: row.created_at,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    updatedAt: row.updated_at,
  };
}

/**
 * Starts a task, or refuses (RequestExpired) a request the API stopped waiting for: once its notAfter has
 * passed, or when the API abandoned its id first (see abandonTask; whichever of the two writes the row
 * wins). So a request the client was told failed can never start later. Idempotent for the starter
 * itself, so a retried activity does not fail on the row its first try wrote.
 */
export async function startTask(knex: Knex, task: { id: string; kind: string; hostname: string | null; notAfter?: number }): Promise<void> {
  if (task.notAfter !== undefined && Date.now() > task.notAfter) {
    throw new RequestExpired(`the ${task.kind} of ${task.hostname} expired before it could be applied; nothing was done`);
  }
  const now = new Date();
  const inserted = await knex('tasks')
    .insert({ id: task.id, kind: task.kind, hostname: task.hostname, status: 'running', created_at: now, started_at: now, updated_at: now })
    .onConflict('id')
    .ignore()
    .returning('id');
  if (inserted.length > 0) return;
  // A command the API queued durably (a single accept) is claimed here, once; an abandoned one never is.
  const claimed = await knex('tasks').where({ id: task.id, status: 'queued' }).whereNull('started_at').update({ status: 'running', started_at: now, updated_at: now }).returning('id');
  if (claimed.length > 0) return;
  const existing = await knex('tasks').select('started_at', 'error').where({ id: task.id }).first();
  if (existing && existing.started_at === null) throw new RequestExpired(`task ${task.id} was abandoned before it started: ${existing.error}`);
}

/**
 * The API's durable record of a command it hands to a node's workflow without waiting for a worker
 * (a single accept): queued, not started; the workflow starts it when it applies the command.
 */
export async function queueTask(knex: Knex, task: { id: string; kind: string; hostname: string }): Promise<void> {
  await knex('tasks').insert({ id: task.id, kind: task.kind, hostname: task.hostname, status: 'queued' });
}

/**
 * The API withdraws a queued command Temporal did not take: true when it did so before the workflow
 * claimed it (the command then never takes effect); false when the workflow got it after all.
 */
export async function withdrawQueuedTask(knex: Knex, id: string, error: string): Promise<boolean> {
  const now = new Date();
  const withdrawn = await knex('tasks').where({ id, status: 'queued' }).whereNull('started_at').update({ status: 'failed', error, finished_at: now, updated_at: now }).returning('id');
  return withdrawn.length > 0;
}

/** A queued command the workflow refused when applying it: its task fails with the reason. */
export async function failQueuedTask(knex: Knex, id: string, error: string): Promise<void> {
  const now = new Date();
  await knex('tasks').where({ id }).whereIn('status', ['queued', 'running']).update({ status: 'failed', error, finished_at: now, updated_at: now });
}

/** The node's accept still waiting for its workflow, if any (a second one would only be refused when applied). */
export async function queuedAcceptOf(knex: Knex, hostname: string): Promise<string | undefined> {
  const row = await knex('tasks').select('id').where({ hostname, kind: 'accept', status: 'queued' }).first();
  return row?.id;
}

/**
 * The API stopped waiting for a command (no worker took it in time): records the task as failed and never
 * started, unless the workflow started it first. Returns true when the abandonment won.
 */
export async function abandonTask(knex: Knex, task: { id: string; kind: string; hostname: string; error: string }): Promise<boolean> {
  const now = new Date();
  const inserted = await knex('tasks')
    .insert({ id: task.id, kind: task.kind, hostname: task.hostname, status: 'failed', error: task.error, created_at: now, finished_at: now, updated_at: now })
    .onConflict('id')
    .ignore()
    .returning('id');
  return inserted.length > 0;
}

export async function finishTask(
  knex: Knex,
  id: string,
  outcome: { status: 'succeeded' | 'failed'; error?: string; result?: Record<string, unknown> },
): Promise<void> {
  const now = new Date();
  await knex('tasks')
    .where({ id })
    .whereIn('status', ['queued', 'running'])
    .update({
      status: outcome.status,
      error: outcome.error ?? null,
      result: outcome.result ? JSON.stringify(outcome.result) : null,
      finished_at: now,
      updated_at: now,
    });
}

export async function getTask(knex: Knex, id: string): Promise<TaskRecord | undefined> {
  const row = await knex<TaskRow>('tasks').where({ id }).first();
  return row ? toTask(row) : undefined;
}

/** Where a page of tasks ends: created_at (to the microsecond) and id. */
export type TaskKey = [createdAt: string, id: string];

/**
 * Tasks, newest first, a page at a time. (created_at, id) is unique, so it is the cursor; the indexes
 * (created_at, id), (hostname, created_at, id) and (status, created_at, id) serve each filter.
 */
export async function pageTasks(
  knex: Knex,
  filter: { hostname?: string; status?: TaskStatus },
  page: PageRequest<TaskKey>,
): Promise<Page<TaskRecord, TaskKey>> {
  const matching = () => {
    const query = knex('tasks').select('*', exactTime(knex, 'created_at', 'created_key'));
    if (filter.hostname) query.where({ hostname: filter.hostname });
    if (filter.status) query.where({ status: filter.status });
    return query;
  };
  const result = await keysetPage<TaskRow & { created_key: string }, TaskKey>(knex, matching, page, {
    after: (query, [createdAt, id]) => query.whereRaw('(created_at, id) < (?::timestamptz, ?::uuid)', [createdAt, id]),
    order: (query) => query.orderBy([{ column: 'created_at', order: 'desc' }, { column: 'id', order: 'desc' }]),
    keyOf: (row) => [row.created_key, row.id],
  });
  return { ...result, rows: result.rows.map(toTask) };
}
