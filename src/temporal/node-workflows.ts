import { randomUUID } from 'node:crypto';
import {
  isGrpcDeadlineError,
  isGrpcServiceError,
  WithStartWorkflowOperation,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  WorkflowUpdateRPCTimeoutOrCancelledError,
  type WorkflowClient,
} from '@temporalio/client';
import { ApplicationFailure, type SignalDefinition } from '@temporalio/common';
import type { NodeSignaller } from '../../activities/operations';
import { forEachLimited } from '../concurrency';
import { DomainError, domainErrorFromName, NotFound, Unavailable } from '../domain/errors';
import type { NodeState, WorkflowProvisionVerb } from '../domain/states';
import type { PowerTarget } from '../drivers/types';
import { nodeLifecycle } from '../../workflows/node-lifecycle';
import {
  abortInstallUpdate,
  acceptRequestSignal,
  acceptUpdate,
  installEventSignal,
  NODE_STATE_KEY,
  nodeWorkflowId,
  powerUpdate,
  slotHolderWorkflowId,
  provisionUpdate,
  readySignal,
  reinitializeUpdate,
  statusQuery,
  type CommandResult,
  type InitSettings,
  type NodeStatus,
  type NodeLifecycleInput,
} from '../../workflows/definitions';

/** What a command carries to the workflow: its task and the moment the API stops waiting for it. */
interface Command {
  taskId: string;
  expiresAt: number;
}

export interface NodeWorkflowsOptions {
  /** How long a command waits for a worker to take it before the API answers 503. */
  commandTimeoutMs: number;
  /** Every other call to Temporal (queries, signals, terminations) gives up after this. */
  requestTimeoutMs: number;
  /**
   * Records a command the API gave up on, so that it can never start later; false when the workflow
   * started its task first (the command did take effect, just late).
   */
  abandon(task: { id: string; kind: string; hostname: string; error: string }): Promise<boolean>;
}

/** The command's answer may still be on its way when the API's clock says it expired. */
const ANSWER_IN_FLIGHT_MS = 2_000;

/** The API's view of node workflows: Temporal calls in, domain results and domain errors out, all within a deadline. */
export class NodeWorkflows {
  constructor(
    private readonly client: WorkflowClient,
    private readonly taskQueue: string,
    private readonly settings: InitSettings,
    private readonly options: NodeWorkflowsOptions,
  ) {}

  /** Starts the node's workflow if need be and accepts the node in one call (update-with-start). */
  accept(hostname: string, state: NodeState, fingerprint: string, cause?: string): Promise<CommandResult> {
    return this.command(hostname, 'accept', state, (cmd) =>
      this.client.executeUpdateWithStart(acceptUpdate, {
        args: [{ ...cmd, fingerprint, ...(cause ? { cause } : {}) }],
        startWorkflowOperation: this.withStart(hostname, state),
      }),
    );
  }

  /**
   * Hands a queued accept to the node's workflow, starting it if need be (signal-with-start): Temporal
   * persists it, so no worker has to be running. Bounded by TEMPORAL_TIMEOUT like any call.
   */
  requestAccept(hostname: string, state: NodeState, taskId: string, fingerprint: string): Promise<void> {
    return this.call(hostname, async () => {
      await this.client.signalWithStart(nodeLifecycle, {
        ...this.startOptions(hostname, state),
        signal: acceptRequestSignal,
        signalArgs: [{ taskId, fingerprint }],
      });
    });
  }

  reinitialize(hostname: string, state: NodeState): Promise<CommandResult> {
    return this.command(hostname, 'reinitialize', state, (cmd) =>
      this.client.executeUpdateWithStart(reinitializeUpdate, { args: [cmd], startWorkflowOperation: this.withStart(hostname, state) }),
    );
  }

  provision(hostname: string, state: NodeState, verb: WorkflowProvisionVerb): Promise<CommandResult> {
    return this.command(hostname, verb, state, (cmd) =>
      this.client.executeUpdateWithStart(provisionUpdate, { args: [{ ...cmd, verb }], startWorkflowOperation: this.withStart(hostname, state) }),
    );
  }

  power(hostname: string, state: NodeState, target: PowerTarget): Promise<CommandResult> {
    return this.command(hostname, 'power', state, (cmd) =>
      this.client.executeUpdateWithStart(powerUpdate, { args: [{ ...cmd, target }], startWorkflowOperation: this.withStart(hostname, state) }),
    );
  }

  /** Stops the node's running install; after the deadline the workflow refuses it, so a 503 means nothing was done. */
  async abortInstall(hostname: string): Promise<CommandResult> {
    const expiresAt = Date.now() + this.options.commandTimeoutMs;
    try {
      return await translate(hostname, () =>
        this.client.withDeadline(expiresAt + ANSWER_IN_FLIGHT_MS, () => this.client.getHandle(nodeWorkflowId(hostname)).executeUpdate(abortInstallUpdate, { args: [{ expiresAt }] })),
      );
    } catch (err) {
      if (!(err instanceof NoAnswer)) throw err;
      throw new Unavailable(`no worker took the abort of ${hostname} within ${Math.round(this.options.commandTimeoutMs / 1000)} s (is a worker running?); nothing was done`);
    }
  }

  /** Wakes the node's running install: something was recorded for it. */
  installEvent(hostname: string): Promise<void> {
    return this.call(hostname, () => unlessMissing(this.client.getHandle(nodeWorkflowId(hostname)).signal(installEventSignal)));
  }

  /** Deleting a node ends its workflow; a node that never had one is fine. */
  async end(hostname: string, reason: string): Promise<void> {
    await this.call(hostname, () => unlessMissing(this.client.getHandle(nodeWorkflowId(hostname)).terminate(reason)));
  }

  /** Relays the agent's ready message. A node enrolled by its BMC has no workflow before manage: nothing waits for it. */
  ready(hostname: string): Promise<void> {
    return this.call(hostname, () => unlessMissing(this.client.getHandle(nodeWorkflowId(hostname)).signal(readySignal)));
  }

  status(hostname: string): Promise<NodeStatus> {
    return this.call(hostname, () => this.client.getHandle(nodeWorkflowId(hostname)).query(statusQuery));
  }

  /**
   * Starts the node's workflow where the database has it, if it has none yet. The state comes from the
   * database, so the workflow's update validator judges the verb by the same state the inventory shows.
   */
  private withStart(hostname: string, state: NodeState) {
    return new WithStartWorkflowOperation(nodeLifecycle, { ...this.startOptions(hostname, state), workflowIdConflictPolicy: 'USE_EXISTING' });
  }

  private startOptions(hostname: string, state: NodeState) {
    return {
      workflowId: nodeWorkflowId(hostname),
      taskQueue: this.taskQueue,
      args: [{ hostname, settings: this.settings, carried: { state, lastError: null, taskId: null, pendingInit: null } }] as [NodeLifecycleInput],
      typedSearchAttributes: [{ key: NODE_STATE_KEY, value: state }],
    };
  }

  /**
   * Sends a command that needs a worker, and answers within a bounded time whatever happens: the
   * workflow's answer, or 503 when no worker took it. In the second case the command can never take
   * effect later: the workflow refuses it after expiresAt, and the task id is abandoned in the database,
   * which the workflow must claim to start the task. If the workflow claimed it first, the command did
   * take effect and the answer is its task.
   */
  private async command(hostname: string, kind: string, state: NodeState, send: (cmd: Command) => Promise<CommandResult>): Promise<CommandResult> {
    const cmd: Command = { taskId: randomUUID(), expiresAt: Date.now() + this.options.commandTimeoutMs };
    try {
      return await translate(hostname, () => untilReady(cmd.expiresAt, () => this.client.withDeadline(cmd.expiresAt + ANSWER_IN_FLIGHT_MS, () => send(cmd))));
    } catch (err) {
      if (!(err instanceof NoAnswer)) throw err;
      const seconds = Math.round(this.options.commandTimeoutMs / 1000);
      const error = `not started: no worker took the ${kind} within ${seconds} s (is a worker running?); nothing was done`;
      const abandoned = await this.options.abandon({ id: cmd.taskId, kind, hostname, error }).catch(() => {
        throw new Unavailable(`no worker took the ${kind} of ${hostname} within ${seconds} s, and the database did not answer either`);
      });
      if (!abandoned) return { task_id: cmd.taskId, state };
      throw new Unavailable(`no worker took the ${kind} of ${hostname} within ${seconds} s (is a worker running?); nothing was done`, { task_id: cmd.taskId });
    }
  }

  /** Any other call, within the request deadline. */
  private call<T>(hostname: string, fn: () => Promise<T>): Promise<T> {
    return translate(hostname, () => this.client.withDeadline(Date.now() + this.options.requestTimeoutMs, fn)).catch((err: unknown) => {
      if (err instanceof NoAnswer) throw new Unavailable(`Temporal did not answer within ${this.options.requestTimeoutMs} ms`);
      throw err;
    });
  }
}

/** A node without a workflow has nothing to end or wake: that is not an error. */
async function unlessMissing(call: Promise<unknown>): Promise<void> {
  await call.catch((err: unknown) => {
    if (!(err instanceof WorkflowNotFoundError)) throw err;
  });
}

/** The deadline passed without an answer from Temporal or a worker. */
class NoAnswer extends Error {}

/**
 * The server refuses an update while the workflow's last task has failed or timed out (a worker starved
 * of CPU took longer than the task timeout), until its retry completes. The update was not admitted, so
 * sending it again is safe; the command's own deadline still bounds the wait.
 */
async function untilReady<T>(expiresAt: number, send: () => Promise<T>): Promise<T> {
  for (let pause = 200; ; pause = Math.min(pause * 2, 2_000)) {
    try {
      return await send();
    } catch (err) {
      if (!/Workflow Task in failed state/i.test((err as Error)?.message ?? '')) throw err;
      if (Date.now() + pause >= expiresAt) throw new NoAnswer();
      await new Promise((resolve) => setTimeout(resolve, pause));
    }
  }
}

/** Signals many node workflows, a bounded number at a time; a node without a workflow is skipped. */
export function nodeSignaller(client: WorkflowClient, parallel = 32): NodeSignaller {
  return async <Args extends unknown[]>(hostnames: string[], signal: SignalDefinition<Args>, ...args: Args): Promise<void> => {
    // A slot grant may wake a discovery instead of a node (see slotHolderWorkflowId).
    await forEachLimited(hostnames, parallel, (hostname) => unlessMissing(client.getHandle(slotHolderWorkflowId(hostname)).signal(signal, ...args)));
  };
}

/** Temporal's errors as domain errors: a refusal keeps its type and status; an unknown failure stays a 500. */
async function translate<T>(hostname: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    if (err instanceof DomainError) throw err;
    if (err instanceof WorkflowUpdateFailedError && err.cause instanceof ApplicationFailure) {
      const failure = err.cause;
      const details = (failure.details?.[0] ?? {}) as Record<string, unknown>;
      const known = domainErrorFromName(failure.type, failure.message, details);
      if (known) throw known;
      throw new Error(`node ${hostname}: the workflow failed the request: ${failure.type ?? 'unknown type'}: ${failure.message}`);
    }
    if (err instanceof WorkflowNotFoundError) throw new NotFound(`node ${hostname} has no lifecycle workflow (was it accepted?)`);
    if (isGrpcDeadlineError(err) || err instanceof WorkflowUpdateRPCTimeoutOrCancelledError) throw new NoAnswer();
    if (isGrpcServiceError(err) || (err as Error).name === 'ServiceError' || (err as Error).name === 'ConnectionError') {
      throw new Unavailable(`Temporal is not answering: ${(err as Error).message}`);
    }
    throw err;
  }
}
