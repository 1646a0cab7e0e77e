import { ActivityFailure, ApplicationFailure } from '@temporalio/common';
import { condition, log, proxyActivities, proxyLocalActivities, upsertSearchAttributes, uuid4 } from '@temporalio/workflow';
import type { Activities } from '../activities';
import { allowedVerbs, nextState, STABLE_STATES, TARGET_OF, TRANSITIONS, type NodeEvent, type NodeState } from '../src/domain/states';
import type { TransitionRequest } from '../src/domain/transition';
import {
  DATABASE_ACTIVITY_OPTIONS,
  INVALID_STATE,
  NODE_STATE_KEY,
  type CarriedState,
  type CommandResult,
  type InitSettings,
  type InitTrigger,
  type NodeStatus,
} from './definitions';

/**
 * Bookkeeping in our own database, as local activities: they run in the worker beside the workflow,
 * without a round trip through the server per call, and still retry until the database answers (an
 * outage must delay a node, never fail it). The database, not the workflow, decides; so this is safe.
 */
const db = proxyLocalActivities<Activities>(DATABASE_ACTIVITY_OPTIONS);

/** One initialization step on the node; a short retry rides out a blip, the window does the rest. */
const onNode = proxyActivities<Activities>({
  startToCloseTimeout: '2m',
  retry: { maximumAttempts: 2, initialInterval: '1s', nonRetryableErrorTypes: ['PinnedKeyMismatch', 'HostnameMismatch'] },
});

/** The periodic reachability check: one try, its answer is the data. */
const check = proxyActivities<Activities>({
  startToCloseTimeout: '1m',
  retry: { maximumAttempts: 1 },
});

const STEPS = [
  { phase: 'ping', run: (hostname: string) => onNode.pingNode({ hostname }) },
  { phase: 'gather_facts', run: (hostname: string) => onNode.gatherFacts({ hostname }) },
  { phase: 'configure_monitoring', run: (hostname: string) => onNode.configureMonitoring({ hostname }) },
  { phase: 'start_services', run: (hostname: string) => onNode.startServices({ hostname }) },
] as const;

function failureMessage(err: unknown): string {
  if (err instanceof ActivityFailure && err.cause) return err.cause.message;
  return err instanceof Error ? err.message : String(err);
}

/** The state of one node and the procedures that change it; the workflow function only wires messages to it. */
export class NodeEntity {
  state: NodeState;
  lastError: string | null;
  taskId: string | null;
  pendingInit: InitTrigger | null;
  /** The stable state before the current transient one: where a rolled-back commission returns. */
  previousState: NodeState | null = null;
  /** A provision verb whose work (validation, takeover) the main loop is to run. */
  pendingProvision: 'manage' | 'adopt' | null = null;
  /** A power change asked through the API, to run in the main loop. */
  pendingPower: { taskId: string; target: 'power on' | 'power off' | 'rebooting' } | null = null;
  /** Operations were queued for this node since it last looked. */
  operationsQueued = false;
  operation: { id: number; task_id: string; kind: string } | null = null;
  private phase = 'idle';
  private windowEndsAt: number | null = null;
  private attempts = 0;
  private readyPending = false;
  /** A command's transition is being persisted; a second command waits its turn by being refused. */
  private busy = false;

  constructor(
    readonly hostname: string,
    private readonly settings: InitSettings,
    carried?: CarriedState,
  ) {
    this.state = carried?.state ?? 'unmanaged';
    this.lastError = carried?.lastError ?? null;
    this.taskId = carried?.taskId ?? null;
    this.pendingInit = carried?.pendingInit ?? null;
    this.previousState = carried?.previousState ?? null;
    this.pendingProvision = carried?.pendingProvision ?? null;
    // Operations may have been queued while a previous run handed over; look once to be sure.
    this.operationsQueued = carried !== undefined;
  }

  setPhase(phase: string): void {
    this.phase = phase;
  }

  /** True when the node is already in the transient state an operation of this kind leads to. */
  isInTransientOf(kind: NodeEvent): boolean {
    return TRANSITIONS.some((t) => t.event === kind && t.to === this.state);
  }

  status(): NodeStatus {
    return {
      hostname: this.hostname,
      state: this.state,
      target: TARGET_OF[this.state] ?? null,
      last_error: this.lastError,
      task_id: this.taskId,
      phase: this.phase,
      operation: this.operation,
      window_ends_at: this.windowEndsAt === null ? null : new Date(this.windowEndsAt).toISOString(),
      attempts: this.attempts,
    };
  }

  carry(): CarriedState {
    return {
      state: this.state,
      lastError: this.lastError,
      taskId: this.taskId,
      pendingInit: this.pendingInit,
      previousState: this.previousState,
      pendingProvision: this.pendingProvision,
    };
  }

  get idle(): boolean {
    return (
      !this.busy &&
      this.pendingInit === null &&
      this.pendingProvision === null &&
      this.pendingPower === null &&
      !this.operationsQueued &&
      this.operation === null &&
      STABLE_STATES.includes(this.state)
    );
  }

  /** Update validator: refuses a verb the table does not allow from the current state. */
  validate(verb: NodeEvent): void {
    if (this.busy) {
      throw ApplicationFailure.create({
        type: INVALID_STATE,
        message: `another command on ${this.hostname} is being applied`,
        details: [{ state: this.state, allowed: [] }],
        nonRetryable: true,
      });
    }
    if (!nextState(this.state, verb)) {
      throw ApplicationFailure.create({
        type: INVALID_STATE,
        message: `${verb} is not allowed while ${this.hostname} is ${this.state}`,
        details: [{ state: this.state, allowed: allowedVerbs(this.state) }],
        nonRetryable: true,
      });
    }
  }

  /**
   * Applies an operator verb's transition, one command at a time (a second is refused while the first
   * is persisted), and surfaces the database's refusal as the update's failure, not as a stuck task.
   */
  private async exclusively(verb: NodeEvent, apply: () => Promise<void>): Promise<CommandResult> {
    this.validate(verb);
    this.busy = true;
    try {
      await apply();
      return { task_id: this.taskId!, state: this.state };
    } catch (err) {
      if (err instanceof ActivityFailure && err.cause instanceof ApplicationFailure) throw err.cause;
      throw err;
    } finally {
      this.busy = false;
    }
  }

  /** accept / reinitialize: persist the transition and its task, then let the main loop initialize. */
  command(verb: InitTrigger, taskId: string, cause: string, requireFingerprint?: string): Promise<CommandResult> {
    return this.exclusively(verb, async () => {
      await this.transition({ event: verb, cause, taskId, startsTask: { kind: verb }, lastError: null, requireFingerprint });
      this.taskId = taskId;
      this.lastError = null;
      this.pendingInit = verb;
    });
  }

  /**
   * manage / adopt: persist the transition and its task. Where the verb leads straight to a stable
   * state (manage from adopt failed), the task ends with it; otherwise the main loop does the work.
   */
  provision(verb: 'manage' | 'adopt', taskId: string): Promise<CommandResult> {
    return this.exclusively(verb, async () => {
      const immediate = TARGET_OF[nextState(this.state, verb)!] === undefined;
      await this.transition({
        event: verb,
        cause: `${verb} requested through the API`,
        taskId,
        startsTask: { kind: verb },
        ...(immediate ? { endsTask: { status: 'succeeded' as const }, lastError: null } : {}),
      });
      this.taskId = taskId;
      if (!immediate) this.pendingProvision = verb;
    });
  }

  validatePower(): void {
    if (this.busy || this.pendingPower || this.operation || !STABLE_STATES.includes(this.state)) {
      throw ApplicationFailure.create({
        type: INVALID_STATE,
        message: `${this.hostname} is busy (${this.operation ? `running ${this.operation.kind}` : this.state}); try the power change again when it is done`,
        details: [{ state: this.state, allowed: allowedVerbs(this.state) }],
        nonRetryable: true,
      });
    }
  }

  onReady(): void {
    if (this.state === 'initializing') this.readyPending = true;
  }

  /** Persists a transition through the one transition function; the table is checked there. */
  async transition(req: Omit<TransitionRequest, 'hostname' | 'transitionId'>): Promise<void> {
    const outcome = await db.transitionNode({ ...req, hostname: this.hostname, transitionId: uuid4() });
    if (TARGET_OF[outcome.to] !== undefined) this.previousState = outcome.from;
    this.state = outcome.to;
    if (req.lastError !== undefined) this.lastError = req.lastError;
    upsertSearchAttributes([{ key: NODE_STATE_KEY, value: this.state }]);
  }

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
      await check.pingNode({ hostname: this.hostname });
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
      this.lastError = error;
      await db.recordLastError({ hostname: this.hostname, error });
      log.info('initialization attempt failed', { hostname: this.hostname, error });
    }
    this.phase = 'final_attempt';
    const error = await this.attempt();
    await this.finish(error);
  }

  private async finish(error?: string): Promise<void> {
    const taskId = this.taskId ?? undefined;
    if (error === undefined) {
      await this.transition({ event: 'initialized', cause: `initialized after ${this.attempts} attempt(s)`, taskId, endsTask: { status: 'succeeded' }, lastError: null });
      this.lastError = null;
    } else {
      const cause = `initialization window closed and the retry failed: ${error}`;
      await this.transition({ event: 'initialization_failed', cause, taskId, endsTask: { status: 'failed', error }, lastError: error });
      this.lastError = error;
    }
    this.phase = 'idle';
    this.windowEndsAt = null;
  }
}
