/**
 * The node lifecycle as data. This module is imported by the workflow sandbox, the API and the docs
 * generator, so it must stay free of Node built-ins and side effects.
 */

export const NODE_STATES = ['unmanaged', 'initializing', 'active', 'failed'] as const;
export type NodeState = (typeof NODE_STATES)[number];

/** Stable states wait for an operator or an event; transient ones are work in progress. */
export const STABLE_STATES: readonly NodeState[] = ['unmanaged', 'active', 'failed'];

/** Each transient state names the stable state it is heading for (as Ironic's fsm does). */
export const TARGET_OF: Partial<Record<NodeState, NodeState>> = {
  initializing: 'active',
};

export type NodeEvent = 'accept' | 'initialized' | 'initialization_failed' | 'reinitialize';

/** Events an operator asks for (REST action, CLI verb, Temporal signal); the rest come from the workflow. */
export const OPERATOR_VERBS: readonly NodeEvent[] = ['accept', 'reinitialize'];

export interface Transition {
  from: NodeState;
  event: NodeEvent;
  to: NodeState;
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
];

export function nextState(from: NodeState, event: NodeEvent): NodeState | undefined {
  return TRANSITIONS.find((t) => t.from === from && t.event === event)?.to;
}

/** The operator verbs the table allows from a state: what a 409 tells the caller they may do instead. */
export function allowedVerbs(state: NodeState): NodeEvent[] {
  return TRANSITIONS.filter((t) => t.from === state && OPERATOR_VERBS.includes(t.event)).map((t) => t.event);
}

export function isNodeState(value: unknown): value is NodeState {
  return typeof value === 'string' && (NODE_STATES as readonly string[]).includes(value);
}
