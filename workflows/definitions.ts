/**
 * The node workflow's public surface: its messages, status and search attribute. Imported by the
 * workflow and by clients (API, tests), so it holds definitions only.
 */
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { NodeState, OperationKind, WorkflowProvisionVerb } from '../src/domain/states';
import type { PowerTarget } from '../src/drivers/types';

/** One workflow per node, keyed by the business key so that a second start finds the first. */
export function nodeWorkflowId(hostname: string): string {
  return `node:${hostname}`;
}

export interface InitSettings {
  initCheckIntervalMs: number;
  initWindowMs: number;
  /** How long an operation's step may wait for an unreachable node; absent in workflows started before it. */
  operationTimeoutMs?: number;
  /** The install phases' deadlines; absent in workflows started before OS install existed. */
  deploy?: DeploySettings;
}

/** Per-phase deadlines of an install and the power cycles it may use (DEPLOY_* settings). */
export interface DeploySettings {
  leaseTimeoutMs: number;
  installerTimeoutMs: number;
  imageTimeoutMs: number;
  bootTimeoutMs: number;
  /** Power cycles an install may use in all, the first included. */
  powerCycles: number;
}

export type InitTrigger = 'accept' | 'reinitialize';

/** What continue-as-new carries from one run to the next. */
export interface CarriedState {
  state: NodeState;
  lastError: string | null;
  taskId: string | null;
  pendingInit: InitTrigger | null;
  previousState?: NodeState | null;
  pendingProvision?: ProvisionVerbName | null;
}

export type ProvisionVerbName = WorkflowProvisionVerb;

export interface NodeLifecycleInput {
  hostname: string;
  settings: InitSettings;
  carried?: CarriedState;
}

export interface CommandResult {
  task_id: string;
  state: NodeState;
}

export interface NodeStatus {
  hostname: string;
  state: NodeState;
  /** The stable state a transient state is heading for. */
  target: NodeState | null;
  last_error: string | null;
  task_id: string | null;
  /** What the node is doing now: waiting_for_node, checking, ping, gather_facts, waiting_for_slot, commission, ... */
  phase: string;
  /** The bulk operation the node is working on, if any. */
  operation: { id: number; task_id: string; kind: string } | null;
  window_ends_at: string | null;
  attempts: number;
}

/** The failure type a refused command carries (the domain error's name), with details [{ state, allowed }]. */
export const INVALID_STATE = 'InvalidState';
/** The failure type of a request that reached the workflow after the API stopped waiting for it. */
export const REQUEST_EXPIRED = 'RequestExpired';

/**
 * Every command carries the time the API stops waiting for it (ms since the epoch). After that the
 * client has been told "nothing was done", so the workflow refuses it (see NodeEntity.refuseExpired).
 */
interface Expiring {
  expiresAt?: number;
}

/**
 * The fingerprint the operator verified (or an SSH join reported); the transition is refused if the stored
 * key differs by then. `cause` says who vouched, on the node's event (absent: the operator).
 */
export const acceptUpdate = defineUpdate<CommandResult, [{ taskId: string; fingerprint: string; cause?: string } & Expiring]>('accept');
/**
 * A single accept, durable at the API's 202: the task is queued in PostgreSQL and this signal (sent with
 * start) carries it; the workflow applies it, re-checking state and key in the transition's transaction,
 * and fails the task with the reason when it cannot.
 */
export const acceptRequestSignal = defineSignal<[{ taskId: string; fingerprint: string }]>('acceptRequested');
export const reinitializeUpdate = defineUpdate<CommandResult, [{ taskId: string } & Expiring]>('reinitialize');
/** For `temporal workflow signal --name reinitialize`: no answer, so it is ignored outside `failed`. */
export const reinitializeSignal = defineSignal<[]>('reinitialize');
/** The agent's one-time message after acceptance, relayed by the API. */
export const readySignal = defineSignal<[]>('ready');
export const statusQuery = defineQuery<NodeStatus>('status');
/** Ironic's provision verbs: PUT /api/v1/nodes/{name}/states/provision. */
export const provisionUpdate = defineUpdate<CommandResult, [{ taskId: string; verb: ProvisionVerbName } & Expiring]>('provision');
/** PUT /api/v1/nodes/{name}/states/power; the new state is the one enforced from then on. */
export const powerUpdate = defineUpdate<CommandResult, [{ taskId: string; target: PowerTarget } & Expiring]>('power');
/** Operations were queued for this node: look at the queue. */
export const operationsQueuedSignal = defineSignal<[]>('operationsQueued');
/** A slot of the cluster-wide cap was handed to this node's operation. */
export const slotGrantedSignal = defineSignal<[]>('slotGranted');
/** The outcome of a bulk commission this node is part of. */
export interface GroupDecision {
  taskId: string;
  decision: 'commit' | 'rollback';
}
export const groupDecisionSignal = defineSignal<[GroupDecision]>('groupDecision');
/** The power sync read a state on the BMC other than the enforced one; the node checks again and corrects it in turn. */
export const powerDriftSignal = defineSignal<[]>('powerDrift');
/** Something was recorded for the node's running install (a callback, a lease, a script fetch, a rejoin): look. */
export const installEventSignal = defineSignal<[]>('installEvent');
/** PUT .../states/provision {"target":"abort"}: stop the running install cleanly. */
export const abortInstallUpdate = defineUpdate<CommandResult, [Expiring]>('abortInstall');

/** The signals other workflows send to nodes through activities, by name (names cross activity payloads). */
export const NODE_SIGNALS = {
  operationsQueued: operationsQueuedSignal,
  slotGranted: slotGrantedSignal,
  groupDecision: groupDecisionSignal,
  powerDrift: powerDriftSignal,
  installEvent: installEventSignal,
} as const;
export type NodeSignalName = keyof typeof NODE_SIGNALS;

/** One workflow per address of a discover request, keyed by its queued operation. */
export function discoverWorkflowId(operationId: number): string {
  return `discover:${operationId}`;
}

/**
 * The workflow that holds a queue row's slot: a node's (woken by hostname) or a discovery's. Host names
 * cannot hold a colon, so the two never collide.
 */
export function slotHolderWorkflowId(target: string): string {
  return target.startsWith('discover:') ? target : nodeWorkflowId(target);
}

export function bulkWorkflowId(taskId: string): string {
  return `task:${taskId}`;
}
export interface BulkOperationInput {
  taskId: string;
  /** accept: a bulk accept, whose rows the bulk workflow works itself (the nodes have no workflow yet). */
  kind: OperationKind | 'discover' | 'accept';
  /** Where a continued run picks up. */
  phase?: 'notify' | 'steps' | 'finish';
  /** How far a continued run had woken the request's rows (by id), and for which stage (WaveStage). */
  woken?: { stage: 'step' | 'decision'; afterId: number };
}

export const NODE_STATE_KEY = defineSearchAttributeKey('NodeState', SearchAttributeType.KEYWORD);

/** The failure type a join step's failure crosses the activity boundary with; its details name the step. */
export const JOIN_STEP_FAILED = 'JoinStepFailed';

export interface DiscoverAddressInput {
  taskId: string;
  operationId: number;
  /** How long the joined agent has to announce itself with the key its join reported. */
  announceTimeoutMs: number;
}
