import { randomUUID } from 'node:crypto';
import {
  isGrpcServiceError,
  WithStartWorkflowOperation,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  type WorkflowClient,
} from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { forEachLimited } from '../concurrency';
import { domainErrorFromName, InvalidState, NotFound, Unavailable } from '../domain/errors';
import type { NodeState } from '../domain/states';
import type { nodeLifecycle } from '../../workflows/node-lifecycle';
import {
  acceptUpdate,
  NODE_STATE_KEY,
  NODE_WORKFLOW_TYPE,
  nodeWorkflowId,
  powerUpdate,
  provisionUpdate,
  readySignal,
  reinitializeUpdate,
  statusQuery,
  type CommandResult,
  type InitSettings,
  type NodeStatus,
} from '../../workflows/definitions';

/** The API's view of node workflows: Temporal calls in, domain results and domain errors out. */
export class NodeWorkflows {
  constructor(
    private readonly client: WorkflowClient,
    private readonly taskQueue: string,
    private readonly settings: InitSettings,
  ) {}

  /** Starts the node's workflow if need be and accepts the node in one call (update-with-start). */
  accept(hostname: string, fingerprint: string): Promise<CommandResult> {
    const start = new WithStartWorkflowOperation<typeof nodeLifecycle>(NODE_WORKFLOW_TYPE, {
      workflowId: nodeWorkflowId(hostname),
      taskQueue: this.taskQueue,
      args: [{ hostname, settings: this.settings }],
      workflowIdConflictPolicy: 'USE_EXISTING',
      typedSearchAttributes: [{ key: NODE_STATE_KEY, value: 'unmanaged' }],
    });
    return translate(hostname, () =>
      this.client.executeUpdateWithStart(acceptUpdate, {
        args: [{ taskId: randomUUID(), fingerprint }],
        startWorkflowOperation: start,
      }),
    );
  }

  /** Starts the node's workflow where the database has it, if it has none yet, and sends the update. */
  private withStart(hostname: string, state: NodeState) {
    return new WithStartWorkflowOperation<typeof nodeLifecycle>(NODE_WORKFLOW_TYPE, {
      workflowId: nodeWorkflowId(hostname),
      taskQueue: this.taskQueue,
      args: [{ hostname, settings: this.settings, carried: { state, lastError: null, taskId: null, pendingInit: null } }],
      workflowIdConflictPolicy: 'USE_EXISTING',
      typedSearchAttributes: [{ key: NODE_STATE_KEY, value: state }],
    });
  }

  provision(hostname: string, state: NodeState, verb: 'manage' | 'adopt'): Promise<CommandResult> {
    return translate(hostname, () =>
      this.client.executeUpdateWithStart(provisionUpdate, {
        args: [{ taskId: randomUUID(), verb }],
        startWorkflowOperation: this.withStart(hostname, state),
      }),
    );
  }

  power(hostname: string, state: NodeState, target: 'power on' | 'power off' | 'rebooting'): Promise<CommandResult> {
    return translate(hostname, () =>
      this.client.executeUpdateWithStart(powerUpdate, {
        args: [{ taskId: randomUUID(), target }],
        startWorkflowOperation: this.withStart(hostname, state),
      }),
    );
  }

  /** Deleting a node ends its workflow; a node that never had one is fine. */
  async end(hostname: string, reason: string): Promise<void> {
    await this.client
      .getHandle(nodeWorkflowId(hostname))
      .terminate(reason)
      .catch((err: unknown) => {
        if (!(err instanceof WorkflowNotFoundError)) throw err;
      });
  }

  reinitialize(hostname: string): Promise<CommandResult> {
    return translate(hostname, () =>
      this.client.getHandle(nodeWorkflowId(hostname)).executeUpdate(reinitializeUpdate, { args: [{ taskId: randomUUID() }] }),
    );
  }

  /** Relays the agent's ready message. A node enrolled by its BMC has no workflow before manage: nothing waits for it. */
  ready(hostname: string): Promise<void> {
    return translate(hostname, () =>
      this.client
        .getHandle(nodeWorkflowId(hostname))
        .signal(readySignal)
        .catch((err: unknown) => {
          if (!(err instanceof WorkflowNotFoundError)) throw err;
        }),
    );
  }

  status(hostname: string): Promise<NodeStatus> {
    return translate(hostname, () => this.client.getHandle(nodeWorkflowId(hostname)).query(statusQuery));
  }
}

/** Signals many node workflows, a bounded number at a time; a node without a workflow is skipped. */
export function nodeSignaller(client: WorkflowClient, parallel = 32) {
  return async (hostnames: string[], signal: string, args: unknown[] = []): Promise<void> => {
    await forEachLimited(hostnames, parallel, (hostname) =>
      client
        .getHandle(nodeWorkflowId(hostname))
        .signal(signal, ...args)
        .catch((err: unknown) => {
          if (!(err instanceof WorkflowNotFoundError)) throw err;
        }),
    );
  };
}

async function translate<T>(hostname: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    if (err instanceof WorkflowUpdateFailedError && err.cause instanceof ApplicationFailure) {
      const failure = err.cause;
      const details = (failure.details?.[0] ?? {}) as Record<string, unknown>;
      throw domainErrorFromName(failure.type, failure.message, details) ?? new InvalidState(failure.message, details);
    }
    if (err instanceof WorkflowNotFoundError) throw new NotFound(`node ${hostname} has no lifecycle workflow (was it accepted?)`);
    if (isGrpcServiceError(err) || (err as Error).name === 'ServiceError' || (err as Error).name === 'ConnectionError') {
      throw new Unavailable(`Temporal is not answering: ${(err as Error).message}`);
    }
    throw err;
  }
}
