import { condition, continueAsNew, defineSignal, setHandler, workflowInfo } from '@temporalio/workflow';
import { sweeps } from './activity-options';

export const PROVISIONER_WORKFLOW_ID = 'provisioner';
/** Nodes, ports or boot environments changed: bring dnsmasq's files in step (OpenCrowbar's on_node_change). */
export const inventoryChangedSignal = defineSignal<[]>('inventoryChanged');

/** Heals files changed behind the service's back, even when nothing signals. */
const RECONCILE_AT_LEAST_EVERY = '10m';

/**
 * The one writer of a provisioning network's files: changes are coalesced and written one reconcile at
 * a time (each reconcile writes what the database says, so a burst of changes costs one write).
 */
export async function provisioner(): Promise<void> {
  let dirty = true;
  setHandler(inventoryChangedSignal, () => {
    dirty = true;
  });
  for (;;) {
    await condition(() => dirty, RECONCILE_AT_LEAST_EVERY);
    dirty = false;
    await sweeps.reconcileBootFiles();
    if (workflowInfo().continueAsNewSuggested) await continueAsNew<typeof provisioner>();
  }
}
