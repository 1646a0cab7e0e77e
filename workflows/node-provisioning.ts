import { failureMessage, hardware } from './activity-options';
import type { NodeEntity } from './node-entity';

/** Ironic's manage and adopt for one node: validation against the BMC, then takeover. */
export class ProvisionRunner {
  constructor(private readonly node: NodeEntity) {}

  async run(): Promise<void> {
    const verb = this.node.takeProvision();
    if (verb === 'manage') await this.manage();
    else if (verb === 'adopt') await this.adopt();
    this.node.setPhase('idle');
  }

  private async manage(): Promise<void> {
    const taskId = this.node.taskId ?? undefined;
    this.node.setPhase('validating_power');
    let power: string;
    try {
      power = await hardware.validatePower({ name: this.node.hostname });
    } catch (err) {
      const error = `power validation: ${failureMessage(err)}`;
      await this.node.transition({ event: 'verification_failed', cause: error, taskId, endsTask: { status: 'failed', error }, lastError: error });
      return;
    }
    // Outside the try: a refusal by the database is not a failed power validation.
    await this.node.transition({ event: 'verified', cause: `BMC answered; power is ${power}`, taskId, endsTask: { status: 'succeeded' }, lastError: null });
  }

  private async adopt(): Promise<void> {
    const taskId = this.node.taskId ?? undefined;
    try {
      this.node.setPhase('validating_boot');
      await hardware.validateBoot({ name: this.node.hostname });
      this.node.setPhase('taking_over');
      await hardware.takeOver({ name: this.node.hostname });
    } catch (err) {
      const error = `adoption: ${failureMessage(err)}`;
      await this.node.transition({ event: 'adoption_failed', cause: error, taskId, endsTask: { status: 'failed', error }, lastError: error });
      return;
    }
    await this.node.transition({ event: 'adopted', cause: 'boot configuration recorded; node untouched', taskId, endsTask: { status: 'succeeded' }, lastError: null });
  }
}
