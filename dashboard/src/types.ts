/** The API's JSON shapes, as far as the dashboard reads them. */

export interface NodeSummary {
  hostname: string;
  state: string;
  target_state: string | null;
  allowed_actions: string[];
  fingerprint: string | null;
  address: string | null;
  last_error: string | null;
  reachable: boolean;
  last_seen_at: string | null;
  power_state: string | null;
  power_fault: boolean;
  driver: string | null;
  updated_at: string;
}

export interface Operation {
  id: number;
  task_id: string;
  hostname: string | null;
  address?: string;
  step?: string | null;
  kind: string;
  status: string;
  error: string | null;
  result: Record<string, unknown> | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
}

export interface NodeEvent {
  id: number;
  type: string;
  from_state: string | null;
  to_state: string | null;
  event: string | null;
  cause: string | null;
  task_id: string | null;
  at: string;
}

export interface NodeDetail extends NodeSummary {
  monitoring_silenced: boolean;
  enforced_power_state: string | null;
  driver_info: Record<string, unknown> | null;
  instance_info: Record<string, unknown> | null;
  facts: Record<string, unknown> | null;
  announced_at: string | null;
  accepted_at: string | null;
  facts_at: string | null;
  created_at: string;
  operations: Operation[];
  events: NodeEvent[];
  reachability_events: { type: string; at: string }[];
  initialization?: Record<string, unknown> | null;
  deploy: Record<string, unknown> | null;
}

export interface Claim {
  hostname: string;
  fingerprint: string;
  address: string;
  announced_at: string;
  last_seen_at: string;
  claims: number;
  conflict: boolean;
}

export interface Progress {
  total: number;
  queued: number;
  running: number;
  waiting: number;
  succeeded: number;
  failed: number;
}

export interface Task {
  id: string;
  kind: string;
  hostname: string | null;
  status: string;
  error: string | null;
  result: Record<string, unknown> | null;
  decision: string | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  /** A task's own details: an anneal task's deployment, for one. */
  details?: Record<string, unknown> | null;
  progress?: Progress;
  nodes?: Operation[];
  /** An anneal task's noderoles (GET /api/v1/tasks/{id}); its `progress` then counts them by state. */
  noderoles?: AnnealTaskNoderole[];
}

export interface AnnealTaskNoderole {
  id: number;
  role: string;
  node: string;
  state: NoderoleState;
  error: string | null;
}

export interface ClusterEvent {
  id: number;
  type: string;
  nodes: string[];
  at: string;
}

export interface Summary {
  total: number;
  by_state: Record<string, number>;
  reachable: number;
  unreachable: number;
  power_faults: number;
  pending_claims: number;
  tasks_in_flight: number;
}

/** One message of the live stream (src/dashboard/change-feed.ts). */
export interface Change {
  nodes: NodeSummary[];
  more_nodes: boolean;
  gone: string[];
  tasks: Task[];
  events: number;
  summary: Summary;
}

/** The task a command started (202). */
export interface Accepted {
  task_id: string;
}

/** Deployments, roles and noderoles (issue #12; src/deployments/present.ts). */

export type NoderoleState = 'proposed' | 'todo' | 'transition' | 'active' | 'error' | 'blocked';

export interface Deployment {
  name: string;
  parent: string | null;
  state: 'proposed' | 'committed';
  description: string;
  nodes: number;
  noderole_counts: Record<NoderoleState, number>;
  created_at: string;
  updated_at: string;
  committed_at: string | null;
}

export interface DeploymentTree {
  name: string;
  state: Deployment['state'];
  nodes: number;
  children: DeploymentTree[];
}

/** GET /api/v1/deployments/{name}: the deployment with its subtree, path, roles and first noderoles. */
export interface DeploymentDetail extends Deployment {
  tree: DeploymentTree;
  path: string[];
  roles: { role: string; attributes: Record<string, unknown> }[];
  noderoles: Noderole[];
  noderoles_truncated?: boolean;
}

/** A script role's last run, or a built-in role's operation result. */
export interface NoderoleResult {
  exit_code?: number;
  stdout?: string;
  stderr?: string;
  [key: string]: unknown;
}

export interface Noderole {
  id: number;
  deployment: string;
  role: string;
  node: string;
  state: NoderoleState;
  attributes: Record<string, unknown>;
  effective_attributes: Record<string, unknown>;
  requires: string[];
  error: string | null;
  task_id: string | null;
  operation_id: number | null;
  runs: number;
  result: NoderoleResult | null;
  created_at: string;
  updated_at: string;
  started_at: string | null;
  finished_at: string | null;
}

/** A commit or a retry (202): its anneal task and how many noderoles it put in todo. */
export interface AnnealAccepted extends Accepted {
  noderoles: number;
}
