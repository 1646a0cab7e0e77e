import { condition, proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { OperationRef } from '../activities/operations';
import type { HookResult } from '../src/agent/hooks';
import { SCRIPT_ROLE_STATES } from '../src/domain/noderoles';
import { INSTALL_KINDS, type HookKind, type OperationKind } from '../src/domain/states';
import { db as queue, failureMessage, operationStepOptions } from './activity-options';
import type { DeploySettings } from './definitions';
import type { NodeEntity } from './node-entity';
import { InstallRunner } from './node-install';

const MAX_RECHECK_MS = 5 * 60_000;
const DECISION_RECHECK_MS = 60 * 60_000;

/** A queued operation that moves the node through the state table (everything but a script role). */
export type StateOperation = OperationRef & { kind: OperationKind };

/** What a failed run says: its last lines of output. `what` names the executable (a hook, a role's script). */
function hookError(result: HookResult, what = 'hook'): string | null {
  if (result.exit_code === 0) return null;
  const output = (result.stderr || result.stdout).trim().split('\n').slice(-3).join(' | ');
  return `${result.operation} ${what} exited ${result.exit_code}${output ? `: ${output}` : ''}`;
}

/**
 * Runs the bulk operations queued for one node, oldest first, one at a time. Each step on the node
 * holds one of the cluster's slots; a commission then keeps the node until its whole request is decided.
 */
export class OperationRunner {
  private slotHint = false;
  private readonly decisions = new Map<string, 'commit' | 'rollback'>();
  readonly installs: InstallRunner;

  constructor(
    private readonly node: NodeEntity,
    private readonly operationTimeoutMs: number,
    deploySettings: DeploySettings,
  ) {
    this.installs = new InstallRunner(node, deploySettings, {
      acquire: (op, interrupted) => this.acquireSlot(op, interrupted),
      release: (op) => this.releaseSlot(op),
    });
  }

  onSlotGranted(): void {
    this.slotHint = true;
  }

  onDecision(taskId: string, decision: 'commit' | 'rollback'): void {
    this.decisions.set(taskId, decision);
  }

  private get onNode() {
    // Waits for an unreachable node, within the operation's own timeout (contiv: the node may come back).
    return proxyActivities<Activities>(operationStepOptions(this.operationTimeoutMs));
  }

  /** Takes and runs queued operations until the node has none left. */
  async drain(): Promise<void> {
    if (!this.node.takeOperationsQueued()) return;
    for (;;) {
      const op = await queue.claimNextOperation({ hostname: this.node.hostname });
      if (!op) return;
      this.node.beginOperation({ id: op.id, task_id: op.taskId, kind: op.kind });
      try {
        await this.run(op);
      } finally {
        this.node.endOperation();
      }
    }
  }

  private async run(ref: OperationRef): Promise<void> {
    if (ref.kind === 'role') return this.role(ref);
    const op = ref as StateOperation;
    if (INSTALL_KINDS.includes(op.kind)) return this.installs.run(op);
    const cause = `${op.kind} (task ${op.taskId})`;
    // A resumed run finds the node already in the operation's transient state.
    if (!this.node.isInTransientOf(op.kind)) {
      try {
        await this.node.transition({ event: op.kind, cause, taskId: op.taskId });
      } catch (err) {
        await queue.finishOperation({ operationId: op.id, status: 'failed', error: failureMessage(err) });
        return;
      }
    }
    switch (op.kind) {
      case 'commission':
        return this.commission(op, cause);
      case 'decommission':
        return this.decommission(op, cause);
      case 'maintenance':
        return this.maintenance(op, cause);
      default:
        throw new Error(`no steps for operation kind ${op.kind}`);
    }
  }

  /**
   * Waits for a slot of the operation's pool; false when `interrupted` said stop first (the request for
   * a slot is then withdrawn, so the slot is never handed to a row that gave up).
   */
  private async acquireSlot(op: OperationRef, interrupted: () => boolean = () => false): Promise<boolean> {
    this.node.setPhase('waiting_for_slot');
    let recheck = 5_000;
    for (;;) {
      this.slotHint = false;
      if (await queue.requestSlot({ operationId: op.id })) return true;
      // Normally a release hands us the slot and signals; the timer only covers a lost signal.
      await condition(() => this.slotHint || interrupted(), recheck);
      if (interrupted()) {
        await this.releaseSlot(op);
        return false;
      }
      recheck = Math.min(recheck * 2, MAX_RECHECK_MS);
    }
  }

  private async releaseSlot(op: OperationRef): Promise<void> {
    await queue.releaseSlot({ operationId: op.id });
  }

  /** Runs work on the node while holding a slot; the slot is given back whatever happens. */
  private async withSlot<T>(op: OperationRef, work: () => Promise<T>): Promise<T> {
    await this.acquireSlot(op);
    try {
      return await work();
    } finally {
      await this.releaseSlot(op);
    }
  }

  /** A hook run whose failure is data: the error text, or null when it succeeded. */
  private async hook(op: OperationRef, hook: HookKind): Promise<{ error: string | null; result: HookResult | null }> {
    this.node.setPhase(`${hook}_hook`);
    try {
      const result = await this.onNode.runHook({ hostname: this.node.hostname, operationId: op.id, hook });
      return { error: hookError(result), result };
    } catch (err) {
      return { error: `${hook}: ${failureMessage(err)}`, result: null };
    }
  }

  private async silence(silenced: boolean): Promise<string | null> {
    this.node.setPhase(silenced ? 'silencing_monitoring' : 'unsilencing_monitoring');
    try {
      await this.onNode.setMonitoringSilenced({ hostname: this.node.hostname, silenced });
      return null;
    } catch (err) {
      return `monitoring: ${failureMessage(err)}`;
    }
  }

  /**
   * A deployment's script role: no state of the node changes. The node must still be in a state a
   * script role runs in when its turn comes (something queued before it may have changed that).
   */
  private async role(op: OperationRef): Promise<void> {
    if (!SCRIPT_ROLE_STATES.includes(this.node.state)) {
      const error = `node is ${this.node.state}; a script role runs on a node that is ${SCRIPT_ROLE_STATES.join(' or ')}`;
      await queue.finishOperation({ operationId: op.id, status: 'failed', error });
      return;
    }
    const ran = await this.withSlot(op, async () => {
      this.node.setPhase('role_script');
      try {
        const result = await this.onNode.runRoleScript({ hostname: this.node.hostname, operationId: op.id });
        return { error: hookError(result, 'script'), result };
      } catch (err) {
        return { error: `role: ${failureMessage(err)}`, result: null };
      }
    });
    await queue.finishOperation({ operationId: op.id, status: ran.error ? 'failed' : 'succeeded', error: ran.error, result: { role: ran.result } });
  }

  private async commission(op: OperationRef, cause: string): Promise<void> {
    const leavingMaintenance = this.node.previousState === 'maintenance';
    const step = await this.withSlot(op, async () => {
      const ran = await this.hook(op, 'commission');
      if (ran.error || !leavingMaintenance) return ran;
      return { ...ran, error: await this.silence(false) };
    });
    await queue.markOperationWaiting({ operationId: op.id, error: step.error, result: { commission: step.result } });

    this.node.setPhase('waiting_for_request');
    // A deployment's commission role is a request of one: its own step decides it.
    const decision = op.noderoleId ? (step.error ? 'rollback' : 'commit') : await this.decision(op.taskId);
    if (decision === 'commit') {
      await this.node.transition({ event: 'commissioned', cause, taskId: op.taskId, lastError: null, monitoringSilenced: false });
      await queue.finishOperation({ operationId: op.id, status: 'succeeded', error: null });
      return;
    }
    // Someone in the request failed: undo this node too, then return it to where it was.
    const cleanup = await this.withSlot(op, () => this.hook(op, 'decommission'));
    const error = step.error ?? 'rolled back: another node of the request failed';
    const lastError = cleanup.error ? `${error}; cleanup: ${cleanup.error}` : error;
    await this.node.transition({ event: 'commission_failed', cause: `${cause} rolled back`, taskId: op.taskId, lastError });
    await queue.finishOperation({
      operationId: op.id,
      status: 'failed',
      error: lastError,
      result: { commission: step.result, cleanup: cleanup.result },
    });
  }

  private async decommission(op: OperationRef, cause: string): Promise<void> {
    const ran = await this.withSlot(op, () => this.hook(op, 'decommission'));
    await this.node.transition({ event: 'decommissioned', cause, taskId: op.taskId, lastError: ran.error });
    // Best effort: the node is decommissioned either way, and the failure stays on record.
    await queue.finishOperation({ operationId: op.id, status: 'succeeded', error: ran.error, result: { decommission: ran.result } });
  }

  private async maintenance(op: OperationRef, cause: string): Promise<void> {
    const done = await this.withSlot(op, async () => {
      const silenced = await this.silence(true);
      const ran = await this.hook(op, 'maintenance');
      return { error: [silenced, ran.error].filter(Boolean).join('; ') || null, result: ran.result };
    });
    await this.node.transition({ event: 'maintenance_entered', cause, taskId: op.taskId, lastError: done.error, monitoringSilenced: true });
    await queue.finishOperation({ operationId: op.id, status: 'succeeded', error: done.error, result: { maintenance: done.result } });
  }

  private async decision(taskId: string): Promise<'commit' | 'rollback'> {
    // The request's workflow records its decision, then signals it in waves; the timer only covers a
    // signal that never came (that workflow terminated from outside part-way). It is long because every
    // node of a commission waits here at once: with rechecks after 60 s, 120 s, 240 s, ... the 5,000
    // waiting nodes of one request made more workflow tasks than the request's own steps, and the
    // commission slowed to a third.
    for (;;) {
      const known = this.decisions.get(taskId) ?? (await queue.getDecision({ taskId }));
      if (known) return known;
      await condition(() => this.decisions.has(taskId), DECISION_RECHECK_MS);
    }
  }
}
