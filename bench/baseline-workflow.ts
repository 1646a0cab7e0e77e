import { proxyActivities } from '@temporalio/workflow';

const { noop, operation } = proxyActivities<{ noop(): Promise<void>; operation(): Promise<void> }>({ startToCloseTimeout: '1m' });

/**
 * The benchmark's yardstick: as many activities as a node's lifecycle, doing nothing. The last stands for
 * the node's operation (its commission hook), which our service runs under the cluster's cap on
 * concurrent operations: the yardstick's worker holds the same cap around it.
 */
export async function baselineShape(activities: number): Promise<void> {
  for (let i = 0; i < activities - 1; i++) await noop();
  await operation();
}
