import { continueAsNew, sleep, workflowInfo } from '@temporalio/workflow';
import { db as monitor } from './activity-options';

export const NODE_MONITOR_WORKFLOW_ID = 'node-monitor';

/** The cluster's one monitor: sweeps heartbeats on a durable timer and records discovered/disappeared. */
export async function nodeMonitor(input: { disappearAfterMs: number }): Promise<void> {
  const every = Math.max(1_000, Math.round(input.disappearAfterMs / 4));
  for (;;) {
    await monitor.sweepReachability({ silentMs: input.disappearAfterMs });
    if (workflowInfo().continueAsNewSuggested) await continueAsNew<typeof nodeMonitor>(input);
    await sleep(every);
  }
}
