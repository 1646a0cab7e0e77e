import { continueAsNew, proxyActivities, sleep, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../activities';

const sync = proxyActivities<Activities>({ startToCloseTimeout: '10m', heartbeatTimeout: '2m', retry: { maximumInterval: '1m' } });

export const POWER_SYNC_WORKFLOW_ID = 'power-sync';

/** Ironic's power state sync: on a durable timer, enforce the recorded power state of adopted nodes. */
export async function powerSync(input: { intervalMs: number }): Promise<void> {
  for (;;) {
    await sync.syncPowerStates();
    if (workflowInfo().continueAsNewSuggested) await continueAsNew<typeof powerSync>(input);
    await sleep(input.intervalMs);
  }
}
