import { ApplicationFailure } from '@temporalio/common';
import { condition, log, patched, upsertSearchAttributes, uuid4 } from '@temporalio/workflow';
import { allowedVerbs, isStable, nextState, refusal, TARGET_OF, TRANSITIONS, type NodeEvent, type NodeState } from '../src/domain/states';
import type { TransitionRequest } from '../src/db/transitions-repo';
import type { PowerTarget } from '../src/drivers/types';
import { db, failureMessage, onAgent, probe, refusalOf } from './activity-options';
import {
  INVALID_STATE,
  NODE_STATE_KEY,
  REQUEST_EXPIRED,
  type CarriedState,
  type CommandResult,
  type InitSettings,
  type InitTrigger,
  type ProvisionVerbName,
} from './definitions';

const STEPS = [
  { phase: 'ping', run: (hostname: string) => onAgent.pingNode({ hostname }) },
  { phase: 'gather_facts', run: (hostname: string) => onAgent.gatherFacts({ hostname }) },
  // Writes the same file with the same content every time: a step repeated after a worker crash is harmless.
  { phase: 'configure_monitoring', run: (hostname: string) => onAgent.configureMonitoring({ hostname }) },
  { phase: 'start_services', run: (hostname: string) => onAgent.startServices({ hostname }) },
] as const;

/** The work the main loop can be asked to do next, in the order it takes it. */
export type NodeWork = 'initialize' | 'provision' | 'power' | 'operations' | 'power_drift';

export interface PowerRequest {
  taskId: string;
  target: PowerTarget;
}

function refuse(type: string, message: string, details: Record<string, unknown>): never {
  throw ApplicationFailure.create({ type, message, details: [details], nonRetryable: true });
}

/**
 * The state of one node and the procedures that change it; the workflow function only wires messages
 * to it, and the runners (provisioning, power, operations) change it through its intent methods.
 */
export class NodeEntity {
  private _state: NodeState;
  private _lastError: string | null;
  private _taskId: string | null;
  /** The stable state before the current transient one: where a rolled-back commission returns. */
  private _previousState: NodeState | null;
  private pendingInit: InitTrigger | null;
  /** A provision verb whose work (validation, takeover) the main loop is to run. */
  private pendingProvision: ProvisionVerbName | null;
  /** A power change asked through the API, to run in the main loop. */
  private pendingPower: PowerRequest | null = null;
  /** Operations were queued for this node since it last looked. */
  private operationsQueued: boolean;
  /** False in runs started before operations waited for initialization: they replay as they ran. */
  private readonly operationsWaitForInitialization: boolean;
  /** The power sync saw the BMC differ from the enforced state: check and correct, in turn with other work. */
  private powerDrift = false;
  private operation: { id: number; task_id: string; kind: string } | null = null;
  private phase = 'idle';
  private windowEndsAt: number | null = null;
  private attempts = 0;
  private readyPending = false;
  /** A command's transition is being persisted; a second command is refused meanwhile. */
  private busy = false;
  /** Whether initialization closes the node's task: not after an install, whose task may span many nodes. */
  private initEndsTask = true;

  constructor(
    readonly hostname: string,
    private readonly settings: InitSettings,
    carried?: CarriedState,
  ) {
    this._state = carried?.state ?? 'unmanaged';
    this._lastError = carried?.lastError ?? null;
    this._taskId = carried?.taskId ?? null;
    this.pendingInit = carried?.pendingInit ?? null;
    this._previousState = carried?.previousState ?? null;
    this.pendingProvision = carried?.pendingProvision ?? null;
    // Operations may have been queued while a previous run handed over; look once to be sure.
    this.operationsQueued = carried !== undefined;
    this.operationsWaitForInitialization = patched('operations-wait-for-initialization');
  }

  get state(): NodeState {
    return this._state;
  }
  get previousState(): NodeState | null {
    return this._previousState;
  }
  get taskId(): string | null {
    return this._taskId;
  }

  setPhase(phase: string): void {
    this.phase = phase;
  }

  /** True when the node is already in the transient state an operation of this kind leads to. */
  isInTransientOf(kind: NodeEvent): boolean {
    return TRANSITIONS.some((t) => t.event === kind && t.to === this._state);
  }

  status() {
    return {
      hostname: this.hostname,
      state: this._state,
      target: TARGET_OF[this._state] ?? null,
      last_error: this._lastError,
      task_id: this._taskId,
      phase: this.phase,
      operation: this.operation,
      window_ends_at: this.windowEndsAt === null ? null : new Date(this.windowEndsAt).toISOString(),
      attempts: this.attempts,
    };
  }

  carry(): CarriedState {
    return {
      state: this._state,
      lastError: this._lastError,
      taskId: this._taskId,
      pendingInit: this.pendingInit,
      previousState: this._previousState,
      pendingProvision: this.pendingProvision,
    };
  }

  /** The next piece of work for the main loop, or null when there is none. */
  nextWork(): NodeWork | null {
    if (this.pendingInit !== null) return 'initialize';
    if (this.pendingProvision !== null) return 'provision';
    if (this.pendingPower !== null) return 'power';
    // An operation queued behind the node's accept (its request judged the node by the state the accept
    // leads to) runs once the accept is applied and initialization has made the node active, not against
    // the node on its way there.
    const initializing = this.busy || this._state === 'initializing';
    if (this.operationsQueued && !(this.operationsWaitForInitialization && initializing)) return 'operations';
    if (this.powerDrift) return 'power_drift';
    return null;
  }

  get idle(): boolean {
    return !this.busy && this.nextWork() === null && this.operation === null && isStable(this._state);
  }

  // --- messages from outside -------------------------------------------------------------------

  /** Update validator: refuses an expired request and a verb the table does not allow now. */
  validate(verb: NodeEvent, expiresAt?: number): void {
    this.refuseExpired(expiresAt);
    if (this.busy) refuse(INVALID_STATE, `another command on ${this.hostname} is being applied`, { state: this._state, allowed: [] });
    if (!nextState(this._state, verb)) refuse(INVALID_STATE, refusal(this.hostname, this._state, verb), { state: this._state, allowed: allowedVerbs(this._state) });
  }

  /** A power change runs only on an idle node in a stable state: it is serialized with all other work. */
  validatePower(expiresAt?: number): void {
    this.refuseExpired(expiresAt);
    if (this.busy || this.pendingPower || this.operation || !isStable(this._state)) {
      refuse(
        INVALID_STATE,
        `${this.hostname} is busy (${this.operation ? `running ${this.operation.kind}` : this._state}); try the power change again when it is done`,
        { state: this._state, allowed: allowedVerbs(this._state) },
      );
    }
  }

  /**
   * The API gave up waiting at expiresAt and told its client so: an update delivered later (no worker
   * was running) must not take effect. Workflow time is the server's time of this workflow task.
   */
  private refuseExpired(expiresAt: number | undefined): void {
    if (expiresAt !== undefined && Date.now() > expiresAt) {
      refuse(REQUEST_EXPIRED, `the request for ${this.hostname} expired before a worker took it; nothing was done`, {});
    }
  }

  /** accept / reinitialize: persist the transition and its task, then let the main loop initialize. */
  command(verb: InitTrigger, taskId: string, cause: string, options: { requireFingerprint?: string; expiresAt?: number } = {}): Promise<CommandResult> {
    return this.exclusively(verb, options.expiresAt, async () => {
      await this.transition({ event: verb, cause, taskId, startsTask: { kind: verb, notAfter: options.expiresAt }, lastError: null, requireFingerprint: options.requireFingerprint });
      this._taskId = taskId;
      this.pendingInit = verb;
    });
  }

  /**
   * An accept the API queued (acceptRequestSignal): applied like the accept update. A signal has nobody
   * to answer, so a refusal (accepted meanwhile, another key, another command being applied) fails the
   * queued task with its reason, and never the workflow.
   */
  async applyQueuedAccept(taskId: string, fingerprint: string): Promise<void> {
    try {
      await this.command('accept', taskId, 'accepted by operator', { requireFingerprint: fingerprint });
    } catch (err) {
      const reason = failureMessage(err);
      log.warn('queued accept refused', { hostname: this.hostname, taskId, reason });
      await db.failQueuedTask({ id: taskId, error: `not applied: ${reason}` });
    }
  }

  /**
   * manage / adopt: persist the transition and its task. Where the verb leads straight to a stable
   * state (manage from adopt failed), the task ends with it; otherwise the main loop does the work.
   */
  provision(verb: ProvisionVerbName, taskId: string, expiresAt?: number): Promise<CommandResult> {
    return this.exclusively(verb, expiresAt, async () => {
      const immediate = TARGET_OF[nextState(this._state, verb)!] === undefined;
      await this.transition({
        event: verb,
        cause: `${verb} requested through the API`,
        taskId,
        startsTask: { kind: verb, notAfter: expiresAt },
        ...(immediate ? { endsTask: { status: 'succeeded' as const }, lastError: null } : {}),
      });
      this._taskId = taskId;
      if (!immediate) this.pendingProvision = verb;
    });
  }

  /** PUT .../states/power: the task is recorded now; the change runs in the main loop, after any work in progress. */
  async requestPower(request: PowerRequest, expiresAt?: number): Promise<CommandResult> {
    this.validatePower(expiresAt);
    this.pendingPower = request;
    try {
      await db.startTask({ id: request.taskId, kind: 'power', hostname: this.hostname, notAfter: expiresAt });
    } catch (err) {
      this.pendingPower = null;
      throw refusalOf(err) ?? err;
    }
    return { task_id: request.taskId, state: this._state };
  }

  onReady(): void {
    // An installed OS's agent sends it while the install is still finishing (deploying).
    if (this._state === 'initializing' || this._state === 'deploying') this.readyPending = true;
  }

  noteOperationsQueued(): void {
    this.operationsQueued = true;
  }

  notePowerDrift(): void {
    this.powerDrift = true;
  }

  // --- what the runners take and report -------------------------------------------------------

  takeProvision(): ProvisionVerbName | null {
    const verb = this.pendingProvision;
    this.pendingProvision = null;
    return verb;
  }

  takePowerRequest(): PowerRequest | null {
    const request = this.pendingPower;
    this.pendingPower = null;
    return request;
  }

  takeOperationsQueued(): boolean {
    const queued = this.operationsQueued;
    this.operationsQueued = false;
    return queued;
  }

  takePowerDrift(): boolean {
    const drift = this.powerDrift;
    this.powerDrift = false;
    return drift;
  }

  beginOperation(operation: { id: number; task_id: string; kind: string }): void {
    this.operation = operation;
  }

  endOperation(): void {
    this.operation = null;
    this.phase = 'idle';
  }

  /**
   * Applies an operator verb's transition, one command at a time, and surfaces the database's refusal
   * as the update's failure, not as a stuck task.
   */
  private async exclusively(verb: NodeEvent, expiresAt: number | undefined, apply: () => Promise<void>): Promise<CommandResult> {
    this.validate(verb, expiresAt);
    this.busy = true;
    try {
      await apply();
      return { task_id: this._taskId!, state: this._state };
    } catch (err) {
      throw refusalOf(err) ?? err;
    } finally {
      this.busy = false;
    }
  }

  /** Persists a transition through the one transition function; the table is checked there. */
  async transition(req: Omit<TransitionRequest, 'hostname' | 'transitionId'>): Promise<void> {
    const outcome = await db.transitionNode({ ...req, hostname: this.hostname, transitionId: uuid4() });
    if (TARGET_OF[outcome.to] !== undefined) this._previousState = outcome.from;
    this._state = outcome.to;
    if (req.lastError !== undefined) this._lastError = req.lastError;
    upsertSearchAttributes([{ key: NODE_STATE_KEY, value: this._state }]);
  }

  // --- initialization (Skyring) ---------------------------------------------------------------

  /** Runs the whole sequence once; returns the error that stopped it, if any. */
  private async attempt(): Promise<string | undefined> {
    this.attempts += 1;
    for (const step of STEPS) {
      this.phase = step.phase;
      try {
        await step.run(this.hostname);
      } catch (err) {
        return `${step.phase}: ${failureMessage(err)}`;
      }
    }
    return undefined;
  }

  private async reachable(): Promise<boolean> {
    this.phase = 'checking';
    try {
      await probe.pingNode({ hostname: this.hostname });
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Skyring's procedure on durable timers: within the window, initialize on the agent's ready message
   * or on any periodic check that finds the node reachable; when the window closes, try once more;
   * if that fails too, the node is failed. A re-initialization starts with an attempt at once.
   */
  async initialize(): Promise<void> {
    await this.initializeInWindow();
    // Operations may have been queued before the node had a workflow at all (a commission queued behind
    // its bulk accept: the request's wake-up found no workflow to signal). Look once, now that the node
    // is in a state they can run in; runs initialized before this replay as they ran.
    if (patched('initialized-node-checks-its-queue')) this.operationsQueued = true;
  }

  private async initializeInWindow(): Promise<void> {
    const trigger = this.pendingInit;
    this.pendingInit = null;
    const deadline = Date.now() + this.settings.initWindowMs;
    this.windowEndsAt = deadline;
    this.attempts = 0;
    let attemptNow = trigger === 'reinitialize';
    for (;;) {
      if (!attemptNow) {
        const remaining = deadline - Date.now();
        if (remaining <= 0) break;
        this.phase = 'waiting_for_node';
        await condition(() => this.readyPending, Math.min(this.settings.initCheckIntervalMs, remaining));
        if (this.readyPending) attemptNow = true;
        else if (Date.now() >= deadline) break;
        else attemptNow = await this.reachable();
        if (!attemptNow) continue;
      }
      attemptNow = false;
      this.readyPending = false;
      const error = await this.attempt();
      if (error === undefined) return this.finish();
      this._lastError = error;
      await db.recordLastError({ hostname: this.hostname, error });
      log.info('initialization attempt failed', { hostname: this.hostname, error });
    }
    this.phase = 'final_attempt';
    const error = await this.attempt();
    await this.finish(error);
  }

  /** Skyring's initialization of a node whose installed OS rejoined: as after an accept, within the request's task. */
  async initializeAfterInstall(taskId: string): Promise<void> {
    // Its transitions name the install's task, not the task the node ran before it.
    this._taskId = taskId;
    this.pendingInit = 'accept';
    this.initEndsTask = false;
    try {
      await this.initialize();
    } finally {
      this.initEndsTask = true;
    }
  }

  private async finish(error?: string): Promise<void> {
    const taskId = this._taskId ?? undefined;
    const ends = (status: 'succeeded' | 'failed') => (this.initEndsTask ? { endsTask: { status, ...(error ? { error } : {}) } } : {});
    if (error === undefined) {
      await this.transition({ event: 'initialized', cause: `initialized after ${this.attempts} attempt(s)`, taskId, ...ends('succeeded'), lastError: null });
    } else {
      const cause = `initialization window closed and the retry failed: ${error}`;
      await this.transition({ event: 'initialization_failed', cause, taskId, ...ends('failed'), lastError: error });
    }
    this.phase = 'idle';
    this.windowEndsAt = null;
  }
}
