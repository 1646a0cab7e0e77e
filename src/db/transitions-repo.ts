import type { Knex } from 'knex';
import { acceptClaim } from './claims-repo';
import { finishTask, startTask } from './tasks-repo';
import { log } from '../log';
import { InvalidState, NotFound } from '../domain/errors';
import { allowedVerbs, DELETABLE_STATES, ENTRY_STATES, nextState, refusal, TARGET_OF, type NodeEvent, type NodeState } from '../domain/states';

export interface TransitionRequest {
  hostname: string;
  event: NodeEvent;
  cause: string;
  /** Unique per transition attempt; a repeat with the same id returns the first outcome. */
  transitionId: string;
  taskId?: string;
  /** Written to the node with the transition: an error on failure, null to clear it on success. */
  lastError?: string | null;
  /** The node's key must still be this one (accept: the fingerprint the operator compared). */
  requireFingerprint?: string;
  /**
   * A task that begins with this transition (accept, reinitialize, manage, adopt), written in the same
   * transaction; notAfter is when the API stopped waiting for the command (ms since the epoch): later,
   * the task and with it the transition are refused.
   */
  startsTask?: { kind: string; notAfter?: number };
  /** Recorded with the state: maintenance silences the node's monitoring, commission lifts it. */
  monitoringSilenced?: boolean;
  /** The task this transition ends, and how. */
  endsTask?: { status: 'succeeded' | 'failed'; error?: string };
}

export interface TransitionOutcome {
  from: NodeState;
  to: NodeState;
}

/**
 * The single place a node changes state: checks the transition table, persists the new state and the
 * event row in one transaction, then logs. The workflow calls it through an activity.
 */
export async function applyTransition(knex: Knex, req: TransitionRequest): Promise<TransitionOutcome> {
  const outcome = await knex.transaction(async (trx) => {
    const done = await trx('node_events').where({ transition_id: req.transitionId }).first();
    if (done) return { from: done.from_state as NodeState, to: done.to_state as NodeState };

    const node = await trx('nodes').where({ hostname: req.hostname }).forUpdate().first();
    if (!node) throw new NotFound(`node ${req.hostname} does not exist`);
    if (req.requireFingerprint !== undefined) {
      // The operator's fingerprint picks one of the keys that claim the host: the node takes that key and
      // address and the other claims are rejected, in this transaction, so all of it commits with the accept.
      await acceptClaim(trx, { hostname: req.hostname, state: node.state, fingerprint: node.fingerprint }, req.requireFingerprint);
    }
    const from = node.state as NodeState;
    const to = nextState(from, req.event, node.previous_state as NodeState | null);
    if (!to) {
      throw new InvalidState(refusal(req.hostname, from, req.event), {
        state: from,
        allowed: allowedVerbs(from),
      });
    }
    const now = new Date();
    const changes: Record<string, unknown> = { state: to, updated_at: now };
    if (req.lastError !== undefined) changes.last_error = req.lastError;
    if (req.event === 'accept') changes.accepted_at = now;
    // Entering a transient state remembers where the node came from, for a rollback.
    if (TARGET_OF[to] !== undefined) changes.previous_state = from;
    if (req.monitoringSilenced !== undefined) changes.monitoring_silenced = req.monitoringSilenced;
    await trx('nodes').where({ hostname: req.hostname }).update(changes);
    await recordTransitionEvent(trx, { hostname: req.hostname, from, to, event: req.event, cause: req.cause, taskId: req.taskId, transitionId: req.transitionId });
    if (req.taskId && req.startsTask) await startTask(trx, { id: req.taskId, hostname: req.hostname, ...req.startsTask });
    if (req.taskId && req.endsTask) await finishTask(trx, req.taskId, req.endsTask);
    return { from, to };
  });
  log.info(`node ${req.hostname}: ${outcome.from} -> ${outcome.to} (${req.event}: ${req.cause})`, { hostname: req.hostname, from: outcome.from, to: outcome.to, event: req.event });
  return outcome;
}

/** The one shape of a transition's event row: entries, transitions and removals alike. */
async function recordTransitionEvent(
  trx: Knex.Transaction,
  e: { hostname: string; from: NodeState | null; to: NodeState | null; event: string; cause: string; taskId?: string; transitionId?: string },
): Promise<void> {
  await trx('node_events').insert({
    hostname: e.hostname,
    type: 'transition',
    from_state: e.from,
    to_state: e.to,
    event: e.event,
    cause: e.cause,
    task_id: e.taskId ?? null,
    transition_id: e.transitionId ?? null,
  });
}

/**
 * A node's life begins (an agent's first announcement, an enrollment): its row and its first event,
 * in one of the table's entry states. Returns the new row, or undefined when the name is taken already.
 */
export async function enterNode(
  trx: Knex.Transaction,
  entry: { hostname: string; state: NodeState; event: string; cause: string; columns: Record<string, unknown> },
): Promise<Record<string, unknown> | undefined> {
  if (ENTRY_STATES[entry.state] === undefined) throw new Error(`${entry.state} is not an entry state of the transition table`);
  const [row] = await trx('nodes')
    .insert({ ...entry.columns, hostname: entry.hostname, state: entry.state })
    .onConflict('hostname')
    .ignore()
    .returning('*');
  if (!row) return undefined;
  await recordTransitionEvent(trx, { hostname: entry.hostname, from: null, to: entry.state, event: entry.event, cause: entry.cause });
  log.info(`node ${entry.hostname}: enters ${entry.state} (${entry.event}: ${entry.cause})`, { hostname: entry.hostname, to: entry.state, event: entry.event });
  return row;
}

/** A node leaves the inventory, only from a state the table allows it in (no cleaning is done). */
export async function removeNode(trx: Knex.Transaction, hostname: string, cause: string): Promise<void> {
  const node = await trx('nodes').select('state').where({ hostname }).forUpdate().first();
  if (!node) throw new NotFound(`no node ${hostname}`, { hostname });
  if (!DELETABLE_STATES.includes(node.state)) {
    throw new InvalidState(`${refusal(hostname, node.state, 'delete')} (only in ${DELETABLE_STATES.join(', ')})`, {
      state: node.state,
      allowed: allowedVerbs(node.state),
    });
  }
  await trx('nodes').where({ hostname }).delete();
  await recordTransitionEvent(trx, { hostname, from: node.state, to: null, event: 'delete', cause });
  log.info(`node ${hostname}: removed from ${node.state} (${cause})`, { hostname, from: node.state });
}
