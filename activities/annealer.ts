import type { Knex } from 'knex';
import { annealPass, type AnnealPass } from '../src/deployments/anneal-repo';
import { NODE_SIGNALS } from '../workflows/definitions';
import type { NodeSignaller } from './operations';

export interface AnnealerDeps {
  knex: Knex;
  signalNodes: NodeSignaller;
}

/** The deployment annealer's steps: a pass over the deployment's noderoles, and the nodes it woke. */
export function createAnnealerActivities(deps: AnnealerDeps) {
  return {
    async annealPass(input: { deployment: string }): Promise<AnnealPass> {
      return annealPass(deps.knex, input.deployment);
    },

    async wakeNodes(input: { hostnames: string[] }): Promise<void> {
      await deps.signalNodes(input.hostnames, NODE_SIGNALS.operationsQueued);
    },
  };
}
