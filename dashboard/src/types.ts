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
  progress?: Progress;
  nodes?: Operation[];
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
