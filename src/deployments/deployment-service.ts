import { randomUUID } from 'node:crypto';
import type { WorkflowClient } from '@temporalio/client';
import type { Knex } from 'knex';
import { BulkRefused, Conflict, Unavailable, type BulkOffender } from '../domain/errors';
import { installFacts } from '../db/operations-repo';
import { osInstallProblems, registeredImages } from './install-fitness';
import { log } from '../log';
import { kickAnnealer } from './annealer-client';
import { deleteDeployment } from './deployments-repo';
import { commitDeployment, installsToRun, retryNoderole, type AnnealTask } from './noderoles-repo';

/**
 * Commit and retry: the two requests that give a deployment's annealer work. Each is one transaction
 * that also wakes the annealer (starting it if need be); if Temporal does not take the wake-up, the
 * transaction is rolled back and the caller gets a 503 with nothing changed.
 */
export class DeploymentService {
  constructor(
    private readonly knex: Knex,
    private readonly client: WorkflowClient,
    private readonly taskQueue: string,
    private readonly temporalTimeoutMs: number,
    /** False when the service has no provisioning network: os-install is refused up front. */
    private readonly provisioningConfigured: boolean,
  ) {}

  async commit(deployment: string): Promise<AnnealTask> {
    return commitDeployment(this.knex, {
      deployment,
      taskId: randomUUID(),
      validate: (trx) => this.refuseUnfitInstalls(trx, deployment),
      kick: () => this.kick(deployment),
    });
  }

  async retry(id: number): Promise<AnnealTask> {
    return retryNoderole(this.knex, { id, taskId: randomUUID(), kick: (deployment) => this.kick(deployment) });
  }

  /** Deletes an empty deployment, then lets its annealer (if it ever ran) see it gone and end. */
  async delete(deployment: string): Promise<void> {
    await deleteDeployment(this.knex, deployment);
    await kickAnnealer(this.client, this.taskQueue, deployment, this.temporalTimeoutMs).catch((err: unknown) =>
      log.warn(`annealer of deleted deployment ${deployment} not told (it ends at its next look): ${(err as Error).message}`),
    );
  }

  private async kick(deployment: string): Promise<void> {
    try {
      await kickAnnealer(this.client, this.taskQueue, deployment, this.temporalTimeoutMs);
    } catch (err) {
      throw new Unavailable(`Temporal is not answering; nothing was committed: ${(err as Error).message}`);
    }
  }

  /** What can be known before anything runs: every install to run names a registered image, and its node has a BMC and a boot port. */
  private async refuseUnfitInstalls(trx: Knex.Transaction, deployment: string): Promise<void> {
    const installs = await installsToRun(trx, deployment);
    if (installs.length === 0) return;
    if (!this.provisioningConfigured) {
      throw new Conflict('os-install needs a provisioning network, and none is configured: set PROVISIONING_URL and the PROVISIONING_* settings (README, OS install)');
    }
    const images = await registeredImages(trx);
    const facts = new Map((await installFacts(trx, installs.map((i) => i.hostname))).map((f) => [f.hostname, f]));
    const offenders: BulkOffender[] = installs.flatMap((install) =>
      osInstallProblems(install.image, facts.get(install.hostname)!, images).map((problem) => ({ node: install.hostname, problem })),
    );
    if (offenders.length > 0) throw new BulkRefused('commit', offenders);
  }
}
