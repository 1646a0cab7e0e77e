import { randomUUID } from 'node:crypto';
import type { WorkflowClient } from '@temporalio/client';
import type { Knex } from 'knex';
import { submitBulk, withdrawBulk, type BulkKind } from '../db/operations-repo';
import { Unavailable } from '../domain/errors';
import type { OperationKind } from '../domain/states';
import { log } from '../log';
import { bulkOperation } from '../../workflows/bulk-operation';
import { bulkWorkflowId } from '../../workflows/definitions';

/** Bulk operations over lists of nodes (contiv's commission / decommission / maintenance). */
export class OperationService {
  constructor(
    private readonly knex: Knex,
    private readonly client: WorkflowClient,
    private readonly taskQueue: string,
    private readonly temporalTimeoutMs: number,
  ) {}

  /**
   * Validates the whole request and queues it in one transaction (or refuses it, naming every
   * offender), then starts its workflow. If Temporal cannot take it, the queued rows are withdrawn.
   */
  async submit(kind: OperationKind, hostnames: string[], extraVars: Record<string, unknown>, image?: string): Promise<string> {
    const taskId = randomUUID();
    await submitBulk(this.knex, { taskId, kind, hostnames, extraVars, image });
    await this.start(taskId, kind);
    return taskId;
  }

  /** Starts the workflow of a request queued in PostgreSQL; if Temporal cannot take it, its rows are withdrawn. */
  async start(taskId: string, kind: BulkKind): Promise<void> {
    try {
      await this.client.withDeadline(Date.now() + this.temporalTimeoutMs, () =>
        this.client.start(bulkOperation, { workflowId: bulkWorkflowId(taskId), taskQueue: this.taskQueue, args: [{ taskId, kind }] }),
      );
    } catch (err) {
      log.error(`task ${taskId}: could not start its workflow: ${(err as Error).message}`);
      await withdrawBulk(this.knex, taskId, 'not started: Temporal did not take the request');
      throw new Unavailable(`Temporal is not answering; nothing was started: ${(err as Error).message}`);
    }
  }
}
