import { continueAsNew, sleep, workflowInfo } from '@temporalio/workflow';
import { sweeps } from './activity-options';

export const POWER_SYNC_WORKFLOW_ID = 'power-sync';

/**
 * Ironic's power state sync on a durable timer. A sweep only reads the BMCs and tells each drifted node's
 * own workflow to correct itself, so it never drives a BMC behind an operator's back. Sweeps run one
 * after the other: one that takes longer than the interval delays the next, it never piles up.
 */
export async function powerSync(input: { intervalMs: number }): Promise<void> {
  for (;;) {
    await sweeps.syncPowerStates();
    if (workflowInfo().continueAsNewSuggested) await continueAsNew<typeof powerSync>(input);
    await sleep(input.intervalMs);
  }
}
