import { ActivityFailure } from '@temporalio/common';
import { proxyActivities, proxyLocalActivities } from '@temporalio/workflow';
import type { Activities } from '../activities';
import { DATABASE_ACTIVITY_OPTIONS } from './definitions';
import type { NodeEntity } from './node-entity';

/** Calls to a BMC or to the boot sources: short retries for blips; a refusal is final. */
const hardware = proxyActivities<Activities>({
  startToCloseTimeout: '2m',
  retry: { maximumAttempts: 3, initialInterval: '2s', nonRetryableErrorTypes: ['DriverError', 'BootValidationFailed', 'NotFound'] },
});
const db = proxyLocalActivities<Activities>(DATABASE_ACTIVITY_OPTIONS);

function reason(err: unknown): string {
  if (err instanceof ActivityFailure && err.cause) return err.cause.message;
  return err instanceof Error ? err.message : String(err);
}

/** Ironic's manage and adopt, and power changes asked through the API, for one node. */
export class ProvisionRunner {
  constructor(private readonly node: NodeEntity) {}

  async run(): Promise<void> {
    const verb = this.node.pendingProvision;
    this.node.pendingProvision = null;
    const taskId = this.node.taskId ?? undefined;
    if (verb === 'manage') {
      this.node.setPhase('validating_power');
      try {
        const power = await hardware.validatePower({ name: this.node.hostname });
        await this.node.transition({ event: 'verified', cause: `BMC answered; power is ${power}`, taskId, endsTask: { status: 'succeeded' }, lastError: null });
      } catch (err) {
        const error = `power validation: ${reason(err)}`;
        await this.node.transition({ event: 'verification_failed', cause: error, taskId, endsTask: { status: 'failed', error }, lastError: error });
      }
    } else if (verb === 'adopt') {
      try {
        this.node.setPhase('validating_boot');
        await hardware.validateBoot({ name: this.node.hostname });
        this.node.setPhase('taking_over');
        await hardware.takeOver({ name: this.node.hostname });
        await this.node.transition({ event: 'adopted', cause: 'boot configuration recorded; node untouched', taskId, endsTask: { status: 'succeeded' }, lastError: null });
      } catch (err) {
        const error = `adoption: ${reason(err)}`;
        await this.node.transition({ event: 'adoption_failed', cause: error, taskId, endsTask: { status: 'failed', error }, lastError: error });
      }
    }
    this.node.setPhase('idle');
  }

  async power(): Promise<void> {
    const request = this.node.pendingPower!;
    this.node.pendingPower = null;
    this.node.setPhase(`power: ${request.target}`);
    try {
      await hardware.changePower({ name: this.node.hostname, target: request.target });
      await db.finishTask({ id: request.taskId, status: 'succeeded' });
    } catch (err) {
      await db.finishTask({ id: request.taskId, status: 'failed', error: reason(err) });
    }
    this.node.setPhase('idle');
  }
}
