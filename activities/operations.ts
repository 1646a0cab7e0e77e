import { heartbeat, activityInfo, sleep } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { SignalDefinition } from '@temporalio/common';
import type { Knex } from 'knex';
import * as queue from '../src/db/operations-repo';
import { slotPoolOf, type HookKind, type NodeQueueKind, type OperationKind } from '../src/domain/states';
import { AGENT_PATHS } from '../src/protocol';
import type { HookResult } from '../src/agent/hooks';
import { NODE_SIGNALS, type GroupDecision, type NodeSignalName } from '../workflows/definitions';
import { AgentClient, AgentOperationFailed } from '../src/agent-client';
import { keepAlive } from './heartbeat';
import { withNodeAgent } from './node-agent';

/** Signals node workflows: the one way activities reach other workflows. */
export type NodeSignaller = <Args extends unknown[]>(hostnames: string[], signal: SignalDefinition<Args>, ...args: Args) => Promise<void>;

export interface OperationDeps {
  knex: Knex;
  agents: AgentClient;
  maxConcurrentOperations: number;
  maxConcurrentDeploys: number;
  /** Cluster-level extra_vars; a request's own vars are merged over them (request keys win). */
  clusterExtraVars: Record<string, unknown>;
  signalNodes: NodeSignaller;
  /** Wakes the annealer of the deployment a noderole belongs to. */
  kickAnnealerOf(noderoleId: number): Promise<void>;
}

/** The wake-ups a bulk request sends its nodes: a signal by name (names cross payloads) with its arguments. */
export type NotifyNodes =
  | { signal: Exclude<NodeSignalName, 'groupDecision'> }
  | { signal: 'groupDecision'; args: [GroupDecision] };

/** A request's wake-up sent in waves: its nodes' own steps, or a commission's decision (queue.WaveStage). */
export type WaveOfTask = { taskId: string; kind: OperationKind } & ({ stage: 'step' } | { stage: 'decision'; decision: GroupDecision });

/** What a node workflow needs to know of a queued operation. */
export interface OperationRef {
  id: number;
  taskId: string;
  /** `role`: a deployment's script role, queued by its annealer. */
  kind: NodeQueueKind;
  status: queue.OperationStatus;
  /** Set when a deployment's annealer queued the row: it is decided on its own, not with a request's other nodes. */
  noderoleId?: number | null;
}

/** What the agent is sent for a script role: read when the step runs, so a retry sends the same. */
async function roleRunOf(knex: Knex, operationId: number) {
  const row = await knex('operations as o')
    .join('noderoles as nr', 'nr.id', 'o.noderole_id')
    .join('roles as r', 'r.name', 'nr.role')
    .select('nr.role', 'nr.deployment', 'r.script', 'r.timeout_seconds', 'o.extra_vars')
    .where('o.id', operationId)
    .first();
  if (!row) throw ApplicationFailure.nonRetryable(`operation ${operationId} names no script role (was its noderole unbound?)`, 'NotFound');
  return { role: row.role as string, deployment: row.deployment as string, script: row.script as string, timeoutSeconds: row.timeout_seconds as number, attributes: row.extra_vars as Record<string, unknown> };
}

/**
 * A bulk request keeps this many of its nodes per slot of its pool awake and on their way to a slot.
 * One per slot holds it; the rest are next in line, so a released slot is handed on at once (the release
 * itself wakes the next row) while the request's waves refill the line between polls.
 */
const WAVE_ROWS_PER_SLOT = 4;
/**
 * A commit takes no slot: its nodes only record their transition. Its waves are bounded by what the
 * worker absorbs, not by the cap; at four per slot, a 5,000-node commit went out at 10 nodes/s on a busy
 * machine (40 in flight, 4 s each), slower than the request's own steps.
 */
const COMMIT_WAVE_ROWS = 200;
/** How often a wave looks whether woken rows have got through their step. */
const WAVE_POLL_MS = 500;
/** One activity wakes waves for this long, then returns, so its workflow records how far it got. */
const WAVES_PER_ACTIVITY_MS = 4 * 60_000;

export function createOperationActivities(deps: OperationDeps) {
  const { knex } = deps;
  const caps: queue.SlotCaps = { general: deps.maxConcurrentOperations, install: deps.maxConcurrentDeploys };

  return {
    async claimNextOperation(input: { hostname: string }): Promise<OperationRef | null> {
      const op = await queue.claimNextOperation(knex, input.hostname);
      // A node's rows are never discoveries: those have no hostname.
      return op ? { id: op.id, taskId: op.taskId, kind: op.kind as NodeQueueKind, status: op.status, noderoleId: op.noderoleId } : null;
    },

    async requestSlot(input: { operationId: number }): Promise<boolean> {
      const { granted, wake } = await queue.requestSlot(knex, input.operationId, caps);
      if (wake.length > 0) await deps.signalNodes(wake, NODE_SIGNALS.slotGranted);
      return granted;
    },

    async releaseSlot(input: { operationId: number }): Promise<void> {
      const handedTo = await queue.releaseSlot(knex, input.operationId, caps);
      if (handedTo.length > 0) await deps.signalNodes(handedTo, NODE_SIGNALS.slotGranted);
    },

    /** Runs the node's hook for a step. Waits for an unreachable node (retries) within the operation timeout. */
    runHook: keepAlive(async (input: { hostname: string; operationId: number; hook: HookKind }): Promise<HookResult> => {
      const op = await knex('operations').select('extra_vars').where({ id: input.operationId }).first();
      const extraVars = { ...deps.clusterExtraVars, ...(op?.extra_vars ?? {}) };
      return withNodeAgent(knex, input.hostname, async (agent) => {
        try {
          // A retry after a timeout carries the same id and joins the run still going on the agent.
          return await deps.agents.call<HookResult>(agent, 'POST', `${AGENT_PATHS.hooks}/${input.hook}`, {
            operation_id: `${input.operationId}:${input.hook}`,
            extra_vars: extraVars,
          });
        } catch (err) {
          if (err instanceof AgentOperationFailed && err.status === 400) throw ApplicationFailure.nonRetryable(err.message, 'BadRequest');
          throw err;
        }
      });
    }),

    /** Runs a deployment's script role on the node: the role's text, with the noderole's effective attributes on stdin. */
    runRoleScript: keepAlive(async (input: { hostname: string; operationId: number }): Promise<HookResult> => {
      const run = await roleRunOf(knex, input.operationId);
      return withNodeAgent(knex, input.hostname, async (agent) => {
        try {
          // A retry after a timeout carries the same id and joins the run still going on the agent.
          return await deps.agents.call<HookResult>(agent, 'POST', `${AGENT_PATHS.roles}/${run.role}`, {
            operation_id: `${input.operationId}:role`,
            deployment: run.deployment,
            script: run.script,
            attributes: run.attributes,
            timeout_seconds: run.timeoutSeconds,
          });
        } catch (err) {
          if (err instanceof AgentOperationFailed && err.status === 400) throw ApplicationFailure.nonRetryable(err.message, 'BadRequest');
          throw err;
        }
      });
    }),

    setMonitoringSilenced: keepAlive(async (input: { hostname: string; silenced: boolean }): Promise<void> => {
      await withNodeAgent(knex, input.hostname, (agent) => deps.agents.call(agent, 'POST', AGENT_PATHS.silence, { silenced: input.silenced }));
    }),

    async markOperationWaiting(input: { operationId: number; error: string | null; result: Record<string, unknown> }): Promise<void> {
      await queue.markWaiting(knex, input.operationId, input.error, input.result);
    },

    async finishOperation(input: {
      operationId: number;
      status: 'succeeded' | 'failed';
      error: string | null;
      result?: Record<string, unknown>;
    }): Promise<void> {
      const noderoleId = await queue.finishOperation(knex, input.operationId, input);
      // The deployment's annealer settles the noderole and runs what depended on it (it also looks on its own).
      if (noderoleId !== null) await deps.kickAnnealerOf(noderoleId);
    },

    async getDecision(input: { taskId: string }): Promise<'commit' | 'rollback' | null> {
      return queue.getDecision(knex, input.taskId);
    },

    // --- the bulk request's side ---

    /** Wakes every node of a request, in pages; the heartbeat remembers how far a retry can skip. */
    async notifyNodesOfTask(input: { taskId: string; statuses?: queue.OperationStatus[] } & NotifyNodes): Promise<number> {
      let afterId = (activityInfo().heartbeatDetails as number | undefined) ?? 0;
      let sent = 0;
      for (;;) {
        const page = await queue.hostnamesOfTask(knex, input.taskId, { afterId, limit: 500, statuses: input.statuses });
        if (page.length === 0) return sent;
        const hostnames = page.map((p) => p.hostname);
        if (input.signal === 'groupDecision') await deps.signalNodes(hostnames, NODE_SIGNALS.groupDecision, ...input.args);
        else await deps.signalNodes(hostnames, NODE_SIGNALS[input.signal]);
        sent += page.length;
        afterId = page[page.length - 1]!.id;
        heartbeat(afterId);
      }
    },

    /**
     * Wakes a request's nodes in waves sized to its pool's slots, not all at once: thousands of nodes
     * woken together each claim their row and ask for a slot, and the wake-ups of the few holding one
     * queue behind that bookkeeping (the 5,000-node commission in the README stalled so). A row's place
     * frees when it gets through its step, or for a decision when it finishes (queue.WaveStage). Returns
     * how far it woke, and whether every row is woken; a retry resumes from its heartbeat.
     */
    async wakeInWaves(input: WaveOfTask & { afterId: number }): Promise<{ afterId: number; done: boolean }> {
      const window = input.stage === 'decision' && input.decision.decision === 'commit' ? COMMIT_WAVE_ROWS : WAVE_ROWS_PER_SLOT * caps[slotPoolOf(input.kind)];
      let afterId = Math.max(input.afterId, (activityInfo().heartbeatDetails as number | undefined) ?? 0);
      const stopAt = Date.now() + WAVES_PER_ACTIVITY_MS;
      while (Date.now() < stopAt) {
        const { wake, last } = await queue.nextWave(knex, input.taskId, { afterId, window, stage: input.stage });
        if (wake.length > 0) {
          const hostnames = wake.map((row) => row.hostname);
          if (input.stage === 'decision') await deps.signalNodes(hostnames, NODE_SIGNALS.groupDecision, input.decision);
          else await deps.signalNodes(hostnames, NODE_SIGNALS.operationsQueued);
          afterId = wake[wake.length - 1]!.id;
        }
        heartbeat(afterId);
        if (last) return { afterId, done: true };
        // Cancelled with its workflow: the sleep throws, and nothing more is woken.
        await sleep(WAVE_POLL_MS);
      }
      return { afterId, done: false };
    },

    async taskProgress(input: { taskId: string }): Promise<queue.TaskProgress> {
      return queue.taskProgress(knex, input.taskId);
    },

    async decide(input: { taskId: string; decision: 'commit' | 'rollback' }): Promise<'commit' | 'rollback'> {
      return queue.decide(knex, input.taskId, input.decision);
    },

    /** Decommission and maintenance are best effort: the request succeeds with per-node results. */
    async finishBulkTask(input: { taskId: string; kind: queue.BulkKind }): Promise<{ status: 'succeeded' | 'failed' }> {
      const progress = await queue.taskProgress(knex, input.taskId);
      const failedNodes = await knex('operations as o')
        .leftJoin('discoveries as d', 'd.operation_id', 'o.id')
        .select(knex.raw('coalesce(o.hostname, d.address) as hostname'), 'o.error')
        .where('o.task_id', input.taskId)
        .whereNotNull('o.error')
        .orderBy('o.id')
        .limit(20);
      // A commission is all or nothing; a discovery with a failed address, or an accept with a failed node, asks
      // the operator to look and post it again (contiv).
      const status = (input.kind === 'commission' || input.kind === 'discover' || input.kind === 'accept') && progress.failed > 0 ? 'failed' : 'succeeded';
      const error =
        failedNodes.length === 0 ? null : failedNodes.map((f) => `${f.hostname}: ${f.error}`).join('; ') + (progress.stepFailures > 20 ? '; …' : '');
      const now = new Date();
      await knex('tasks')
        .where({ id: input.taskId })
        .whereIn('status', ['queued', 'running'])
        .update({
          status,
          error,
          result: JSON.stringify({ total: progress.total, succeeded: progress.succeeded, failed: progress.failed }),
          finished_at: now,
          updated_at: now,
        });
      return { status };
    },
  };
}

export type OperationActivities = ReturnType<typeof createOperationActivities>;
