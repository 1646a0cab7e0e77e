/**
 * The node lifecycle as data. This module is imported by the workflow sandbox, the API and the docs
 * generator, so it must stay free of Node built-ins and side effects.
 */

export const NODE_STATES = [
  'unmanaged',
  'initializing',
  'active',
  'failed',
  'commissioning',
  'commissioned',
  'decommissioning',
  'decommissioned',
  'entering_maintenance',
  'maintenance',
  'enroll',
  'verifying',
  'manageable',
  'adopting',
  'adopt failed',
  'deploying',
  'deploy failed',
] as const;
export type NodeState = (typeof NODE_STATES)[number];

/** Where a node's life begins, and what begins it. */
export const ENTRY_STATES: Partial<Record<NodeState, string>> = {
  unmanaged: 'agent announces',
  enroll: 'POST /api/v1/nodes',
};

/** Each transient state names the stable state it is heading for (as Ironic's fsm does). */
export const TARGET_OF: Partial<Record<NodeState, NodeState>> = {
  initializing: 'active',
  commissioning: 'commissioned',
  decommissioning: 'decommissioned',
  entering_maintenance: 'maintenance',
  verifying: 'manageable',
  adopting: 'active',
  deploying: 'active',
};

export type NodeEvent =
  | 'accept'
  | 'initialized'
  | 'initialization_failed'
  | 'reinitialize'
  | 'commission'
  | 'commissioned'
  | 'commission_failed'
  | 'decommission'
  | 'decommissioned'
  | 'maintenance'
  | 'maintenance_entered'
  | 'manage'
  | 'verified'
  | 'verification_failed'
  | 'adopt'
  | 'adopted'
  | 'adoption_failed'
  | 'deploy'
  | 'rebuild'
  | 'abort'
  | 'rejoined'
  | 'deploy_failed';

/** Events an operator asks for (REST, CLI, Temporal signal); the rest come from the workflow. */
export const OPERATOR_VERBS: readonly NodeEvent[] = ['accept', 'reinitialize', 'commission', 'decommission', 'maintenance', 'manage', 'adopt', 'deploy', 'rebuild', 'abort'];

/** The provision verbs of PUT /api/v1/nodes/{name}/states/provision (Ironic's model). */
export const PROVISION_VERBS = ['manage', 'adopt', 'deploy', 'rebuild', 'abort'] as const;
export type ProvisionVerb = (typeof PROVISION_VERBS)[number];
/** The provision verbs the node workflow runs itself; deploy and rebuild go through the operation queue. */
export type WorkflowProvisionVerb = Extract<ProvisionVerb, 'manage' | 'adopt'>;

/** The bulk operations, which queue per node and take slots of their pool's cap. */
export const OPERATION_KINDS = ['commission', 'decommission', 'maintenance', 'deploy', 'rebuild'] as const;
export type OperationKind = (typeof OPERATION_KINDS)[number];
/** What a node's operation queue runs: the bulk operations, and a deployment's script roles (src/domain/noderoles.ts). */
export type NodeQueueKind = OperationKind | 'role';
/** The operations that run a hook on the node's agent (the agent serves exactly these). */
export const HOOK_KINDS = ['commission', 'decommission', 'maintenance'] as const satisfies readonly OperationKind[];
export type HookKind = (typeof HOOK_KINDS)[number];
/** Installs take slots of their own cap (MAX_CONCURRENT_DEPLOYS, Metal3's provisioning limit); the rest share one. */
export const INSTALL_KINDS: readonly OperationKind[] = ['deploy', 'rebuild'];
export type SlotPool = 'install' | 'general';
export function slotPoolOf(kind: NodeQueueKind | 'discover'): SlotPool {
  return (INSTALL_KINDS as readonly string[]).includes(kind) ? 'install' : 'general';
}

/** A transition back to the stable state the node was in before the transient one. */
export const PREVIOUS = 'previous' as const;

export interface Transition {
  from: NodeState;
  event: NodeEvent;
  to: NodeState | typeof PREVIOUS;
  why: string;
}

export const TRANSITIONS: readonly Transition[] = [
  // Accepting is local to the server (Skyring): nothing is sent to the node, so it works while the node is down.
  { from: 'unmanaged', event: 'accept', to: 'initializing', why: 'operator accepted the announced key' },
  // ping, facts, monitoring and services all succeeded, within the window or on the one retry after it.
  { from: 'initializing', event: 'initialized', to: 'active', why: 'initialization completed' },
  // The window closed and the one extra attempt after it failed too.
  { from: 'initializing', event: 'initialization_failed', to: 'failed', why: 'window and retry exhausted' },
  // Only a failed node can be re-initialized; it runs a fresh window.
  { from: 'failed', event: 'reinitialize', to: 'initializing', why: 'operator asked to try again' },

  // Commission runs on all nodes of a request together (contiv).
  { from: 'active', event: 'commission', to: 'commissioning', why: 'commission requested' },
  { from: 'decommissioned', event: 'commission', to: 'commissioning', why: 'commission requested' },
  // Commission is how a node leaves maintenance; its monitoring is un-silenced on the way.
  { from: 'maintenance', event: 'commission', to: 'commissioning', why: 'commission requested' },
  { from: 'commissioning', event: 'commissioned', to: 'commissioned', why: 'every node of the request passed its commission steps' },
  // A node of the request failed: every node runs its decommission steps and returns where it was.
  { from: 'commissioning', event: 'commission_failed', to: PREVIOUS, why: 'a node of the request failed; cleaned up and rolled back' },

  // Decommission is best effort and never fails: a failed cleanup step is recorded on the node.
  { from: 'active', event: 'decommission', to: 'decommissioning', why: 'decommission requested' },
  { from: 'commissioned', event: 'decommission', to: 'decommissioning', why: 'decommission requested' },
  { from: 'maintenance', event: 'decommission', to: 'decommissioning', why: 'decommission requested' },
  { from: 'decommissioning', event: 'decommissioned', to: 'decommissioned', why: 'cleanup ran (best effort)' },

  // Maintenance takes the node out of scheduling and silences its monitoring.
  { from: 'active', event: 'maintenance', to: 'entering_maintenance', why: 'maintenance requested' },
  { from: 'commissioned', event: 'maintenance', to: 'entering_maintenance', why: 'maintenance requested' },
  { from: 'decommissioned', event: 'maintenance', to: 'entering_maintenance', why: 'maintenance requested' },
  { from: 'entering_maintenance', event: 'maintenance_entered', to: 'maintenance', why: 'monitoring silenced, maintenance steps ran' },

  // Adoption (Ironic): enrolled nodes are validated, then taken over without being touched.
  { from: 'enroll', event: 'manage', to: 'verifying', why: 'validate the power interface against the BMC' },
  { from: 'verifying', event: 'verified', to: 'manageable', why: 'credentials, reachability and power state checked' },
  { from: 'verifying', event: 'verification_failed', to: 'enroll', why: 'the BMC refused or did not answer' },
  { from: 'manageable', event: 'adopt', to: 'adopting', why: 'validate the boot interface, then take over' },
  { from: 'adopting', event: 'adopted', to: 'active', why: 'boot configuration recorded; the node was not touched' },
  { from: 'adopting', event: 'adoption_failed', to: 'adopt failed', why: 'boot validation or takeover failed' },
  { from: 'adopt failed', event: 'adopt', to: 'adopting', why: 'retry the adoption' },
  { from: 'adopt failed', event: 'manage', to: 'manageable', why: 'abandon the adoption attempt' },

  // OS install (OpenCrowbar's provisioner): boot environment and DHCP written and proven, power cycle,
  // installer callbacks, hand-off to local boot, then the installed OS's agent rejoins with its new key.
  { from: 'manageable', event: 'deploy', to: 'deploying', why: 'install an image through the boot environment' },
  { from: 'deploy failed', event: 'deploy', to: 'deploying', why: 'try the install again' },
  { from: 'active', event: 'rebuild', to: 'deploying', why: 'reinstall an active node through its BMC' },
  // The installed OS's agent announced with the key the installer reported: initialization as after an accept.
  { from: 'deploying', event: 'rejoined', to: 'initializing', why: 'the installed OS announced with the key made at install time' },
  { from: 'deploying', event: 'deploy_failed', to: 'deploy failed', why: 'a phase failed or timed out; boot set back to local, power off' },
  { from: 'deploying', event: 'abort', to: 'deploy failed', why: 'operator aborted: boot set back to local, DHCP entry disabled, power off' },
  { from: 'deploy failed', event: 'manage', to: 'manageable', why: 'give up the install; the node is enrolled and validated' },
];

/**
 * The state an event leads to from `from`, or undefined when the table does not allow it. `previous`
 * is the stable state the node left for the transient one (needed only for PREVIOUS transitions).
 */
export function nextState(from: NodeState, event: NodeEvent, previous?: NodeState | null): NodeState | undefined {
  const to = TRANSITIONS.find((t) => t.from === from && t.event === event)?.to;
  if (to !== PREVIOUS) return to;
  return previous ?? undefined;
}

/** Stable states wait for an operator or an event: exactly the states that head for no other. */
export function isStable(state: NodeState): boolean {
  return TARGET_OF[state] === undefined;
}
export const STABLE_STATES: readonly NodeState[] = NODE_STATES.filter(isStable);

/** Ironic's enrollment: the node is being validated and taken over, and is not in use yet. */
export const ENROLLMENT_STATES: readonly NodeState[] = ['enroll', 'verifying', 'manageable', 'adopting', 'adopt failed', 'deploying', 'deploy failed'];
/** driver_info and instance_info may change only before the node is in use (Ironic). */
export const EDITABLE_STATES: readonly NodeState[] = ENROLLMENT_STATES.filter(isStable);
/** DELETE /api/v1/nodes/{name} removes a node without any cleaning only where it was never in use. */
export const DELETABLE_STATES: readonly NodeState[] = EDITABLE_STATES;
/** The recorded power state is enforced once a node is in use, never while it is enrolled or adopted. */
export const POWER_NOT_ENFORCED_STATES: readonly NodeState[] = ENROLLMENT_STATES;

/** The one wording of a refused verb, wherever the refusal is decided. */
export function refusal(hostname: string, state: NodeState, verb: string): string {
  return `${verb} is not allowed while ${hostname} is ${state}`;
}

/** The operator verbs the table allows from a state: what a 409 tells the caller they may do instead. */
export function allowedVerbs(state: NodeState): NodeEvent[] {
  return TRANSITIONS.filter((t) => t.from === state && OPERATOR_VERBS.includes(t.event)).map((t) => t.event);
}

/** The stable state a successful operation of this kind leaves a node in. */
export function operationTarget(kind: OperationKind): NodeState {
  const transient = TRANSITIONS.find((t) => t.event === kind)!.to as NodeState;
  return TARGET_OF[transient]!;
}
