import { heartbeat } from '@temporalio/activity';
import type { Knex } from 'knex';
import { forEachLimited } from '../src/concurrency';
import { acceptCause, followAccepts, queuedAccepts, settleAccept, stillAcceptable } from '../src/db/bulk-accept-repo';
import type { TaskProgress } from '../src/db/operations-repo';

export interface BulkAcceptDeps {
  knex: Knex;
  /** The accept an operator's would make (update-with-start of the node's workflow); a refusal is not thrown. */
  acceptNode(hostname: string, fingerprint: string, cause: string): Promise<void>;
}

/** Accepts sent at once: enough to keep the engine busy, few enough not to starve other requests. */
const PARALLEL_ACCEPTS = 16;

export function createBulkAcceptActivities(deps: BulkAcceptDeps) {
  const { knex } = deps;
  return {
    /**
     * Sends the accept of the next queued rows of a bulk accept, and settles each row by what the node
     * holds afterwards: the fingerprint decides, in the accept transition itself, so a claim withdrawn
     * or accepted under another key meanwhile fails its row and never takes a wrong key. Returns how
     * many rows it took; a retry takes the rows still queued.
     */
    async acceptQueuedNodes(input: { taskId: string; limit: number }): Promise<number> {
      const rows = await queuedAccepts(knex, input.taskId, input.limit);
      // Every row is finished before the activity fails: a retry that began while an accept of this attempt
      // was still in flight would send that node a second accept, see it refused as busy, and fail its
      // row while the first accept went on to succeed (seen at 1,000 nodes under load).
      let failure: unknown;
      await forEachLimited(rows, PARALLEL_ACCEPTS, async (row) => {
        try {
          const send = await stillAcceptable(knex, row.hostname, row.fingerprint);
          if (send) await deps.acceptNode(row.hostname, row.fingerprint, acceptCause(input.taskId));
          await settleAccept(knex, { ...row, taskId: input.taskId }, send);
        } catch (err) {
          failure ??= err; // the row stays queued: the retry sends it again
        }
        heartbeat();
      });
      if (failure !== undefined) throw failure;
      return rows.length;
    },

    /** Ends the rows whose node finished initializing (or failed to); the request's progress. */
    async followAccepts(input: { taskId: string }): Promise<TaskProgress> {
      return followAccepts(knex, input.taskId);
    },
  };
}
