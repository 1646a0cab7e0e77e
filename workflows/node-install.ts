import { ApplicationFailure } from '@temporalio/common';
import { condition, log, proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { InstallRef } from '../activities/install';
import type { OperationRef } from '../activities/operations';
import type { InstallEvent } from '../src/provisioning/installs-repo';
import { db, failureMessage, hardware, PRESETS } from './activity-options';
import { INVALID_STATE, type CommandResult, type DeploySettings } from './definitions';
import type { NodeEntity } from './node-entity';
import type { StateOperation } from './node-operations';

/** The defaults of DEPLOY_* for workflows started before the settings existed. */
export const DEFAULT_DEPLOY_SETTINGS: DeploySettings = {
  leaseTimeoutMs: 3 * 60_000,
  installerTimeoutMs: 5 * 60_000,
  imageTimeoutMs: 30 * 60_000,
  bootTimeoutMs: 10 * 60_000,
  powerCycles: 3,
};

/** What the machine must do after the power cycle, in order; each has its own durable timer. */
const MILESTONES = ['lease_seen', 'installer_started', 'image_written', 'installed', 'booting_local', 'rejoined'] as const;
type Milestone = (typeof MILESTONES)[number];

/** A lost wake-up signal costs at most this much delay: the recorded events are read again. */
const RECHECK_MS = 15_000;

type Outcome = { kind: 'rejoined' } | { kind: 'failed'; error: string } | { kind: 'aborted'; phase: string } | { kind: 'timeout'; phase: Milestone };

/** The slots of the install cap, lent by the operation runner. */
export interface InstallSlots {
  acquire(op: OperationRef, interrupted: () => boolean): Promise<boolean>;
  release(op: OperationRef): Promise<void>;
}

/** Proving a boot environment retries inside the activity for a minute; one more attempt after that. */
const confirming = proxyActivities<Activities>({ ...PRESETS.hardware, startToCloseTimeout: '3m', retry: { maximumAttempts: 2, initialInterval: '2s' } });
/** Validation may hash a large disk image (it heartbeats meanwhile). */
const validating = proxyActivities<Activities>({ ...PRESETS.hardware, startToCloseTimeout: '30m' });

function seconds(ms: number): string {
  return ms % 60_000 === 0 ? `${ms / 60_000}m` : `${Math.round(ms / 1000)}s`;
}

/**
 * One install (deploy or rebuild) of one node, each phase a durable step of the node's workflow
 * (OpenCrowbar's provisioner, without its races): validate; write the boot environment and the DHCP
 * entry; prove both before any power command; power-cycle; follow the machine through its recorded
 * events, each phase on its own timer, power-cycling a stuck machine a limited number of times; hand
 * off to local boot (done by the `installed` callback before the installer reboots); and wait for the
 * installed OS's agent to rejoin with the key the installer reported.
 */
export class InstallRunner {
  private wake = false;
  private abortRequested = false;
  private current: InstallRef | null = null;
  private cursor = 0;
  private reached = new Set<Milestone>();
  private milestoneAt = 0;
  /** Something was changed on the machine's behalf: a failure must put it back. */
  private touched = false;

  constructor(
    private readonly node: NodeEntity,
    private readonly settings: DeploySettings,
    private readonly slots: InstallSlots,
  ) {}

  onInstallEvent(): void {
    this.wake = true;
  }

  /** The abort update: the running install stops at its next step and cleans up. */
  requestAbort(): CommandResult {
    if (!this.current) {
      throw ApplicationFailure.create({ type: INVALID_STATE, message: `${this.node.hostname} has no install running`, nonRetryable: true, details: [{ state: this.node.state, allowed: [] }] });
    }
    this.abortRequested = true;
    this.wake = true;
    return { task_id: this.current.taskId, state: this.node.state };
  }

  async run(op: StateOperation): Promise<void> {
    const install = await db.installOfOperation({ operationId: op.id });
    if (!install) {
      await db.finishOperation({ operationId: op.id, status: 'failed', error: 'the install record of this operation is missing' });
      return;
    }
    if (!this.node.isInTransientOf(op.kind)) {
      try {
        await this.node.transition({ event: op.kind, cause: `${op.kind} ${install.image} (task ${op.taskId})`, taskId: op.taskId, lastError: null });
      } catch (err) {
        const error = failureMessage(err);
        await db.finishInstall({ installId: install.id, status: 'failed', error });
        await db.finishOperation({ operationId: op.id, status: 'failed', error });
        return;
      }
    }
    this.current = install;
    this.abortRequested = false;
    this.cursor = 0;
    this.reached = new Set();
    this.touched = false;
    try {
      this.node.setPhase('waiting_for_slot');
      let outcome: Outcome;
      if (!(await this.slots.acquire(op, () => this.abortRequested))) {
        outcome = { kind: 'aborted', phase: 'waiting_for_slot' };
      } else {
        try {
          outcome = await this.install(install);
          if (outcome.kind !== 'rejoined') await this.fail(op, install, outcome);
          else await this.rejoined(op, install);
        } finally {
          await this.slots.release(op);
        }
      }
      if (outcome.kind === 'aborted' && outcome.phase === 'waiting_for_slot') await this.fail(op, install, outcome);
      if (outcome.kind !== 'rejoined') return;
      // Skyring's initialization, as after an accept; the request's task is the bulk task, closed by its workflow.
      await this.node.initializeAfterInstall(op.taskId);
      const active = this.node.state === 'active';
      await db.finishOperation({ operationId: op.id, status: active ? 'succeeded' : 'failed', error: active ? null : this.node.status().last_error });
    } finally {
      this.current = null;
      this.node.setPhase('idle');
    }
  }

  private async phase(phase: string): Promise<void> {
    this.node.setPhase(phase);
    await db.recordInstallPhase({ installId: this.current!.id, phase });
  }

  private aborted(): Outcome {
    return { kind: 'aborted', phase: this.node.status().phase };
  }

  private async install(install: InstallRef): Promise<Outcome> {
    const hostname = install.hostname;
    await db.startInstall({ installId: install.id });
    this.node.setPhase('validating');
    try {
      await validating.validateInstall({ hostname, image: install.image });
    } catch (err) {
      return { kind: 'failed', error: `validate: ${failureMessage(err)}` };
    }
    let generation = 0;
    for (let cycle = 1; ; cycle += 1) {
      if (this.abortRequested) return this.aborted();
      if (!this.reached.has('installed')) {
        this.touched = true;
        try {
          ({ generation } = await hardware.writeBootEnvironment({ installId: install.id, hostname, target: { kind: 'install', image: install.image, attempt: cycle } }));
        } catch (err) {
          return { kind: 'failed', error: `boot_env_written: ${failureMessage(err)}` };
        }
        await this.phase('boot_env_written');
        if (this.abortRequested) return this.aborted();
        try {
          await confirming.confirmBootEnvironment({ hostname, generation, expect: 'install' });
        } catch (err) {
          return { kind: 'failed', error: `dhcp_confirmed: ${failureMessage(err)}` };
        }
        await this.phase('dhcp_confirmed');
        this.reached.clear();
      }
      if (this.abortRequested) return this.aborted();
      const poweredAt = Date.now();
      try {
        await hardware.powerCycleForInstall({ installId: install.id, hostname, cycle });
      } catch (err) {
        return { kind: 'failed', error: `power_cycled: ${failureMessage(err)}` };
      }
      await this.phase('power_cycled');
      this.milestoneAt = Date.now();
      const outcome = await this.watch(install, generation, poweredAt);
      if (outcome.kind !== 'timeout') return outcome;
      const waited = seconds(this.timeoutOf(outcome.phase));
      if (cycle >= this.settings.powerCycles) {
        return { kind: 'failed', error: `${outcome.phase}: not reached within ${waited}, after ${cycle} power cycle(s)` };
      }
      log.warn('install phase timed out; power-cycling again', { hostname, phase: outcome.phase, cycle });
    }
  }

  private timeoutOf(milestone: Milestone): number {
    const s = this.settings;
    switch (milestone) {
      case 'lease_seen':
        return s.leaseTimeoutMs;
      case 'installer_started':
      case 'installed':
        return s.installerTimeoutMs;
      case 'image_written':
        return s.imageTimeoutMs;
      case 'booting_local':
      case 'rejoined':
        return s.bootTimeoutMs;
    }
  }

  /** Marks a milestone and every earlier one it implies (a machine's lease event may come late or not at all). */
  private async reach(milestone: Milestone): Promise<void> {
    if (this.reached.has(milestone)) return;
    for (const m of MILESTONES.slice(0, MILESTONES.indexOf(milestone) + 1)) {
      if (this.reached.has(m)) continue;
      this.reached.add(m);
      await this.phase(m);
    }
    this.milestoneAt = Date.now();
  }

  /** Follows the install's recorded events until it rejoins, fails, is aborted, or a phase times out. */
  private async watch(install: InstallRef, generation: number, poweredAt: number): Promise<Outcome> {
    for (;;) {
      this.wake = false;
      const events = await db.installEvents({ installId: install.id, afterId: this.cursor });
      for (const event of events) {
        this.cursor = event.id;
        const outcome = await this.apply(install, event, generation, poweredAt);
        if (outcome) return outcome;
      }
      if (this.reached.has('rejoined')) return { kind: 'rejoined' };
      if (events.length === 500) continue;
      if (this.abortRequested) return this.aborted();
      const next = MILESTONES.find((m) => !this.reached.has(m))!;
      const remaining = this.milestoneAt + this.timeoutOf(next) - Date.now();
      if (remaining <= 0) return { kind: 'timeout', phase: next };
      await condition(() => this.wake || this.abortRequested, Math.min(remaining, RECHECK_MS));
    }
  }

  private async apply(install: InstallRef, event: InstallEvent, generation: number, poweredAt: number): Promise<Outcome | undefined> {
    const d = event.detail;
    const installed = this.reached.has('installed');
    switch (event.kind) {
      case 'lease':
        // The machine's DHCP after this power cycle (the log also holds older leases).
        if (Number(d.at) >= poweredAt - 5_000 && !installed) await this.reach('lease_seen');
        return undefined;
      case 'install_script':
        if (d.generation !== generation) return undefined;
        if (Number(d.fetch) > 1) {
          return { kind: 'failed', error: `pxe_loop: the installer of generation ${generation} was fetched again (fetch ${String(d.fetch)}) before it reported installed; the machine is boot-looping` };
        }
        await this.reach('lease_seen');
        return undefined;
      case 'local_script':
        if (installed) await this.reach('booting_local');
        return undefined;
      case 'rejoined':
        if (installed) await this.reach('rejoined');
        return undefined;
      case 'callback':
        return this.callback(install, d);
      default:
        return undefined;
    }
  }

  private async callback(install: InstallRef, d: Record<string, unknown>): Promise<Outcome | undefined> {
    const checksum = (phase: Milestone): Outcome | undefined =>
      d.sha256 === install.imageSha256 ? undefined : { kind: 'failed', error: `${phase}: the disk holds sha256 ${String(d.sha256)}, not the image's ${install.imageSha256}` };
    switch (d.event) {
      case 'installing':
        await this.reach('installer_started');
        return undefined;
      case 'progress':
        if (!this.reached.has('installer_started')) await this.reach('installer_started');
        this.node.setPhase(`writing image ${String(d.percent)}%`);
        return undefined;
      case 'image_written':
        return checksum('image_written') ?? (await this.reach('image_written'), undefined);
      case 'installed':
        return checksum('installed') ?? (await this.reach('installed'), undefined);
      case 'failed': {
        const next = MILESTONES.find((m) => !this.reached.has(m))!;
        return { kind: 'failed', error: `${next}: the installer failed: ${String(d.reason)}` };
      }
      default:
        return undefined;
    }
  }

  private async rejoined(op: OperationRef, install: InstallRef): Promise<void> {
    // The install's record is final before the node leaves deploying: whoever sees the new state sees the outcome.
    await db.recordInstalledNode({ hostname: install.hostname, image: install.image });
    await db.finishInstall({ installId: install.id, status: 'succeeded', error: null });
    await this.node.transition({ event: 'rejoined', cause: `installed ${install.image}; its agent announced with the key made at install time`, taskId: op.taskId, lastError: null });
  }

  /** deploy failed (or aborted): the machine is put back to local boot, powered off, and the phase is named. */
  private async fail(op: OperationRef, install: InstallRef, outcome: Exclude<Outcome, { kind: 'rejoined' }>): Promise<void> {
    const aborted = outcome.kind === 'aborted';
    const error = aborted ? `aborted by the operator during ${outcome.phase}` : outcome.kind === 'failed' ? outcome.error : `${outcome.phase}: timed out`;
    const problems = this.touched ? await this.cleanUp(install, aborted) : [];
    const lastError = problems.length > 0 ? `${error}; clean-up: ${problems.join('; ')}` : error;
    // The install's record is final before the node leaves deploying: whoever sees the new state sees the outcome.
    await db.finishInstall({ installId: install.id, status: aborted ? 'aborted' : 'failed', error: lastError });
    await this.node.transition({ event: aborted ? 'abort' : 'deploy_failed', cause: error, taskId: op.taskId, lastError });
    await db.finishOperation({ operationId: op.id, status: 'failed', error: lastError });
  }

  /** Best effort, every step tried: boot back to local (abort: DHCP entry disabled too), then power off. */
  private async cleanUp(install: InstallRef, aborted: boolean): Promise<string[]> {
    this.node.setPhase('cleaning_up');
    const problems: string[] = [];
    try {
      const { generation } = await hardware.writeBootEnvironment({ installId: install.id, hostname: install.hostname, target: { kind: aborted ? 'disabled' : 'local' } });
      await confirming.confirmBootEnvironment({ hostname: install.hostname, generation, expect: aborted ? 'disabled' : 'local' });
    } catch (err) {
      problems.push(`boot environment: ${failureMessage(err)}`);
    }
    try {
      await hardware.powerOffForInstall({ hostname: install.hostname });
    } catch (err) {
      problems.push(`power off: ${failureMessage(err)}`);
    }
    return problems;
  }
}
