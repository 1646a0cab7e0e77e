import type { WorkflowClient } from '@temporalio/client';
import type { Knex } from 'knex';
import { annealerWorkflowId, annealSignal, deploymentAnnealer } from '../../workflows/deployment-annealer';

/** Wakes a deployment's annealer, starting it if it is not running (it ends only when its deployment is deleted). */
export async function kickAnnealer(client: WorkflowClient, taskQueue: string, deployment: string, deadlineMs?: number): Promise<void> {
  const kick = () =>
    client.signalWithStart(deploymentAnnealer, {
      workflowId: annealerWorkflowId(taskQueue, deployment),
      taskQueue,
      args: [{ deployment }],
      signal: annealSignal,
      signalArgs: [],
    });
  if (deadlineMs === undefined) await kick();
  else await client.withDeadline(Date.now() + deadlineMs, kick);
}

/** The annealer of the deployment a noderole belongs to (a node's operation for it has ended). */
export async function kickAnnealerOfNoderole(knex: Knex, client: WorkflowClient, taskQueue: string, noderoleId: number): Promise<void> {
  const row = await knex('noderoles').select('deployment').where({ id: noderoleId }).first();
  if (row) await kickAnnealer(client, taskQueue, row.deployment);
}
