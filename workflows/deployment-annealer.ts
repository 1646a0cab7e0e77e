import { condition, continueAsNew, defineSignal, setHandler, workflowInfo } from '@temporalio/workflow';
import { db, sweeps as fanOut } from './activity-options';

/**
 * One annealer per deployment, keyed by its name within the service's task queue (like the node
 * monitor's id): two services sharing a Temporal namespace never share an annealer.
 */
export function annealerWorkflowId(taskQueue: string, deployment: string): string {
  return `anneal:${taskQueue}:${deployment}`;
}

/** Something changed for the deployment (a commit, a retry, a noderole's operation ended): look again. */
export const annealSignal = defineSignal<[]>('anneal');

/** A lost wake-up costs at most this long: while work is in flight the annealer looks on its own. */
const RECHECK_MS = 10_000;

/**
 * OpenCrowbar's annealer for one deployment, as a durable workflow. Each pass (one transaction) settles
 * ended noderoles, blocks and unblocks, and hands the runnable ones to their nodes' operation queues, so
 * the one-operation-per-node rule and the cluster cap apply to them exactly as to bulk requests; this
 * workflow only wakes the nodes and waits. Idle, it waits for a commit or retry; a restarted worker
 * resumes it, and a pass repeated after a crash finds nothing new to hand out.
 */
export async function deploymentAnnealer(input: { deployment: string }): Promise<void> {
  let kicked = true;
  setHandler(annealSignal, () => {
    kicked = true;
  });
  for (;;) {
    kicked = false;
    const pass = await db.annealPass({ deployment: input.deployment });
    if (pass.gone) return;
    if (pass.wake.length > 0) await fanOut.wakeNodes({ hostnames: pass.wake });
    if (pass.again) continue;
    if (workflowInfo().continueAsNewSuggested) await continueAsNew<typeof deploymentAnnealer>(input);
    if (pass.working === 0) await condition(() => kicked);
    else await condition(() => kicked, RECHECK_MS);
  }
}
