import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import { submitBulkAccept, type AcceptEntry } from '../db/bulk-accept-repo';
import type { OperationService } from './operation-service';

/**
 * salt-key -A for this service: many hosts accepted by the fingerprints their agents print, as one task.
 * The request is validated as a whole and written to PostgreSQL (task and one row per node) before the
 * answer; then one workflow start, never a call per node. The accepts themselves are sent by the task's
 * workflow (workflows/bulk-operation.ts), each decided by its fingerprint in the node's accept transition.
 */
export class BulkAcceptService {
  constructor(
    private readonly knex: Knex,
    private readonly operations: OperationService,
  ) {}

  /** Queues the accepts or refuses them all, naming every offender; returns the task that follows them. */
  async submit(entries: AcceptEntry[]): Promise<string> {
    const taskId = randomUUID();
    await submitBulkAccept(this.knex, taskId, entries);
    // If Temporal cannot take it, the rows are withdrawn and the answer is 503: nothing will be accepted.
    await this.operations.start(taskId, 'accept');
    return taskId;
  }
}
