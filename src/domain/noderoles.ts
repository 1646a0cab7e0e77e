/**
 * Deployments, roles and noderoles as data (OpenCrowbar's model). Like states.ts, imported by the
 * workflow sandbox, the API and the docs generator: no Node built-ins, no side effects.
 */
import { nextState, type NodeState, type OperationKind } from './states';

/** The root of the deployment tree: created at start-up, holds every node by default, never proposed. */
export const SYSTEM_DEPLOYMENT = 'system';

export const DEPLOYMENT_STATES = ['proposed', 'committed'] as const;
export type DeploymentState = (typeof DEPLOYMENT_STATES)[number];

export const NODEROLE_STATES = ['proposed', 'todo', 'transition', 'active', 'error', 'blocked'] as const;
export type NoderoleState = (typeof NODEROLE_STATES)[number];

export type NoderoleEvent = 'commit' | 'start' | 'satisfied' | 'refused' | 'succeeded' | 'failed' | 'dependency_failed' | 'dependency_retried' | 'retry' | 'changed';

export interface NoderoleTransition {
  from: NoderoleState;
  event: NoderoleEvent;
  to: NoderoleState;
  why: string;
}

export const NODEROLE_TRANSITIONS: readonly NoderoleTransition[] = [
  { from: 'proposed', event: 'commit', to: 'todo', why: 'its deployment was committed' },
  // The annealer: every role it requires on the same node is active, so it is handed to the node's operation queue.
  { from: 'todo', event: 'start', to: 'transition', why: "required roles active; queued on the node's operation queue" },
  // A commission role on a node that is already commissioned: nothing to run.
  { from: 'todo', event: 'satisfied', to: 'active', why: 'the node already is what the role makes it' },
  // The node's state (judged after its queued operations) does not allow the role's operation.
  { from: 'todo', event: 'refused', to: 'error', why: 'the node cannot run the role in its state' },
  // Only once the work is really done: an os-install is active when the installed node is active again
  // (the seed marked it active when the reboot was merely scheduled).
  { from: 'transition', event: 'succeeded', to: 'active', why: "the node's operation succeeded" },
  { from: 'transition', event: 'failed', to: 'error', why: "the node's operation failed" },
  { from: 'todo', event: 'dependency_failed', to: 'blocked', why: 'a role it requires on the node is in error or blocked' },
  { from: 'blocked', event: 'dependency_retried', to: 'todo', why: 'no role it requires is in error any more' },
  { from: 'error', event: 'retry', to: 'todo', why: 'operator asked to run it again' },
  // Re-commit: attributes (or the role's definition) changed since the last run.
  { from: 'active', event: 'changed', to: 'todo', why: 're-committed with changed attributes or role' },
  { from: 'error', event: 'changed', to: 'todo', why: 're-committed with changed attributes or role' },
];

/** The state an event leads to, or undefined when the table does not allow it. */
export function nextNoderoleState(from: NoderoleState, event: NoderoleEvent): NoderoleState | undefined {
  return NODEROLE_TRANSITIONS.find((t) => t.from === from && t.event === event)?.to;
}

/** The states an event applies to: what a set-based UPDATE may select (the table stays the one owner). */
export function noderoleStatesFor(event: NoderoleEvent): NoderoleState[] {
  return NODEROLE_TRANSITIONS.filter((t) => t.event === event).map((t) => t.from);
}

/** The one target of an event (every event of the table leads to one state). */
export function noderoleTargetOf(event: NoderoleEvent): NoderoleState {
  const targets = new Set(NODEROLE_TRANSITIONS.filter((t) => t.event === event).map((t) => t.to));
  if (targets.size !== 1) throw new Error(`noderole event ${event} has ${targets.size} targets`);
  return [...targets][0]!;
}

/** Noderoles that are work in progress of an anneal: while any exists, the deployment cannot be proposed. */
export const ANNEALING_STATES: readonly NoderoleState[] = ['todo', 'transition'];
/** Noderoles an anneal task is finished with. */
export const SETTLED_STATES: readonly NoderoleState[] = ['active', 'error', 'blocked'];
/** A required role in one of these stops its dependents. */
export const BLOCKING_STATES: readonly NoderoleState[] = ['error', 'blocked'];

export const ROLE_KINDS = ['script', 'os-install', 'commission'] as const;
export type RoleKind = (typeof ROLE_KINDS)[number];
/** The roles every service has; their kind and script never change. */
export const BUILTIN_ROLES: readonly { name: string; kind: Exclude<RoleKind, 'script'>; description: string; attributes: Record<string, unknown> }[] = [
  { name: 'os-install', kind: 'os-install', description: 'Installs the image named by the `image` attribute (deploy, or rebuild of an active node).', attributes: {} },
  { name: 'commission', kind: 'commission', description: "Commissions the node (its agent's commission hook).", attributes: {} },
];

/** A script role runs on a node in use and reachable: not one in maintenance, enrollment or a transient state. */
export const SCRIPT_ROLE_STATES: readonly NodeState[] = ['active', 'commissioned'];

/** What a runnable noderole becomes on its node's queue. */
export type RoleWork = { kind: 'operation'; operation: OperationKind | 'role' } | { kind: 'satisfied' } | { kind: 'refused'; problem: string };

/**
 * The operation a role runs on a node in `state` (the state the node will be in once the operations
 * already queued on it have run). The node transition table decides for the built-in roles.
 */
export function workOfRole(kind: RoleKind, state: NodeState): RoleWork {
  switch (kind) {
    case 'script':
      if (SCRIPT_ROLE_STATES.includes(state)) return { kind: 'operation', operation: 'role' };
      return { kind: 'refused', problem: `node is ${state}; a script role runs on a node that is ${SCRIPT_ROLE_STATES.join(' or ')}` };
    case 'os-install': {
      // An enrolled node is deployed; one in use is rebuilt (Ironic's rebuild).
      const operation = (['deploy', 'rebuild'] as const).find((verb) => nextState(state, verb));
      if (operation) return { kind: 'operation', operation };
      return { kind: 'refused', problem: `node is ${state}; os-install deploys a manageable or deploy failed node, or rebuilds an active one` };
    }
    case 'commission':
      if (state === 'commissioned') return { kind: 'satisfied' };
      if (nextState(state, 'commission')) return { kind: 'operation', operation: 'commission' };
      return { kind: 'refused', problem: `node is ${state}; commission runs on an active, decommissioned or maintenance node` };
  }
}

/** Attribute precedence, later wins per key: the role's defaults, the deployment's for the role, the noderole's own. */
export function effectiveAttributes(...layers: (Record<string, unknown> | null | undefined)[]): Record<string, unknown> {
  return Object.assign({}, ...layers.filter(Boolean));
}

export const ROLE_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;
export const DEPLOYMENT_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;

/**
 * The first dependency cycle among `roles` (name -> required names), as the path that closes it
 * (`['a', 'b', 'a']`), or null. Unknown names are not followed: they are reported on their own.
 */
export function findCycle(roles: ReadonlyMap<string, readonly string[]>): string[] | null {
  const done = new Set<string>();
  const onPath: string[] = [];
  const visit = (name: string): string[] | null => {
    const at = onPath.indexOf(name);
    if (at !== -1) return [...onPath.slice(at), name];
    if (done.has(name) || !roles.has(name)) return null;
    onPath.push(name);
    for (const required of roles.get(name)!) {
      const cycle = visit(required);
      if (cycle) return cycle;
    }
    onPath.pop();
    done.add(name);
    return null;
  };
  for (const name of [...roles.keys()].sort()) {
    const cycle = visit(name);
    if (cycle) return cycle;
  }
  return null;
}

/** Every role `names` require, transitively, themselves included, dependencies first. */
export function withRequirements(names: readonly string[], roles: ReadonlyMap<string, readonly string[]>): string[] {
  const ordered: string[] = [];
  const seen = new Set<string>();
  const visit = (name: string) => {
    if (seen.has(name)) return;
    seen.add(name);
    for (const required of roles.get(name) ?? []) visit(required);
    ordered.push(name);
  };
  names.forEach(visit);
  return ordered;
}
