import { proxyActivities } from '@temporalio/workflow';

const { noop } = proxyActivities<{ noop(): Promise<void> }>({ startToCloseTimeout: '1m' });

/** The benchmark's yardstick: the same number of activities as a node's lifecycle, doing nothing. */
export async function baselineShape(activities: number): Promise<void> {
  for (let i = 0; i < activities; i++) await noop();
}
