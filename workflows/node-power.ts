import { log } from '@temporalio/workflow';
import { db, failureMessage, hardware } from './activity-options';
import type { NodeEntity } from './node-entity';

/**
 * Power on one node, always from its own workflow's main loop: an operator's change and the power
 * sync's correction of drift are serialized with each other and with every other piece of work on the
 * node, so a sweep that read the BMC before an operator's change can never undo it.
 */
export class PowerRunner {
  constructor(private readonly node: NodeEntity) {}

  /** PUT .../states/power: the new state becomes the enforced one (recorded by the activity). */
  async change(): Promise<void> {
    const request = this.node.takePowerRequest();
    if (!request) return;
    this.node.setPhase(`power: ${request.target}`);
    let error: string | undefined;
    try {
      await hardware.changePower({ name: this.node.hostname, target: request.target });
    } catch (err) {
      error = failureMessage(err);
    }
    await db.finishTask(error === undefined ? { id: request.taskId, status: 'succeeded' } : { id: request.taskId, status: 'failed', error });
    this.node.setPhase('idle');
  }

  /** The sync saw drift: read again now and correct it against the enforced state as it is now. */
  async correctDrift(): Promise<void> {
    if (!this.node.takePowerDrift()) return;
    this.node.setPhase('power: correcting drift');
    try {
      // The activity records its own outcome (event, failure count).
      await hardware.correctPowerDrift({ name: this.node.hostname });
    } catch (err) {
      // Not even the bookkeeping got through (the database is down): the next sweep will ask again.
      // Never let it escape: an uncaught failure here would end the node's workflow.
      log.warn('power drift correction did not complete', { hostname: this.node.hostname, error: failureMessage(err) });
    }
    this.node.setPhase('idle');
  }
}
