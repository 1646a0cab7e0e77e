import type { PendingClaim } from '../db/claims-repo';
import type { NodeEventRecord } from '../db/events-repo';
import type { NodeRecord } from '../db/nodes-repo';
import type { OperationRecord } from '../db/operations-repo';
import type { TaskRecord } from '../db/tasks-repo';
import { allowedVerbs, TARGET_OF, type NodeEvent, type NodeState } from '../domain/states';
import type { BootEntry } from '../provisioning/boot-entries-repo';
import type { InstallRecord } from '../provisioning/installs-repo';

/** A state's verbs, read from the transition table once per state rather than once per node of a page. */
const verbsOf = new Map<NodeState, readonly NodeEvent[]>();
function verbsAllowed(state: NodeState): NodeEvent[] {
  let verbs = verbsOf.get(state);
  if (!verbs) verbsOf.set(state, (verbs = allowedVerbs(state)));
  return [...verbs];
}

/** JSON shapes of the API: snake_case, ISO timestamps, no key material beyond the fingerprint. */
export function presentNode(node: NodeRecord) {
  return {
    hostname: node.hostname,
    state: node.state,
    target_state: TARGET_OF[node.state] ?? null,
    allowed_actions: verbsAllowed(node.state),
    deployment: node.deployment,
    fingerprint: node.fingerprint,
    address: node.address,
    last_error: node.lastError,
    reachable: node.reachable !== false,
    last_seen_at: node.lastSeenAt?.toISOString() ?? null,
    monitoring_silenced: node.monitoringSilenced,
    driver: node.driver,
    // Write-only fields are shown as set, never with their value.
    driver_info: node.driver ? { ...node.driverInfo, ...Object.fromEntries(node.secretFields.map((f) => [f, '******'])) } : null,
    instance_info: node.instanceInfo,
    boot_config: node.bootConfig,
    power_state: node.powerState,
    enforced_power_state: node.enforcedPowerState,
    power_fault: node.powerFault,
    facts: node.facts,
    announced_at: node.announcedAt?.toISOString() ?? null,
    accepted_at: node.acceptedAt?.toISOString() ?? null,
    facts_at: node.factsAt?.toISOString() ?? null,
    created_at: node.createdAt.toISOString(),
    updated_at: node.updatedAt.toISOString(),
  };
}

/** One key claiming an unmanaged host; keys of the same host are listed side by side, as a conflict. */
export function presentUnmanaged(claim: PendingClaim) {
  return {
    hostname: claim.hostname,
    fingerprint: claim.fingerprint,
    address: claim.address,
    // When this key first announced the host: of two claims, the operator may want the older one.
    announced_at: claim.firstSeenAt.toISOString(),
    last_seen_at: claim.lastSeenAt.toISOString(),
    claims: claim.claims,
    conflict: claim.claims > 1,
  };
}

export function presentOperation(op: OperationRecord) {
  return {
    id: op.id,
    task_id: op.taskId,
    hostname: op.hostname,
    // A discovery's address, and the step it is at or failed in.
    ...(op.address ? { address: op.address, step: op.step ?? null } : {}),
    kind: op.kind,
    status: op.status,
    error: op.error,
    result: op.result,
    created_at: op.createdAt.toISOString(),
    started_at: op.startedAt?.toISOString() ?? null,
    finished_at: op.finishedAt?.toISOString() ?? null,
  };
}

export function presentTask(task: TaskRecord) {
  return {
    id: task.id,
    kind: task.kind,
    hostname: task.hostname,
    status: task.status,
    error: task.error,
    result: task.result,
    details: task.details,
    decision: task.decision,
    created_at: task.createdAt.toISOString(),
    started_at: task.startedAt?.toISOString() ?? null,
    finished_at: task.finishedAt?.toISOString() ?? null,
  };
}

export function presentEvent(event: NodeEventRecord) {
  return {
    id: event.id,
    type: event.type,
    from_state: event.fromState,
    to_state: event.toState,
    event: event.event,
    cause: event.cause,
    task_id: event.taskId,
    at: event.at.toISOString(),
  };
}

/** A node's latest install: its phase while it runs, each phase with its time, its place in the queue. */
export function presentInstall(install: InstallRecord & { queuePosition: number | null }) {
  return {
    task_id: install.taskId,
    image: install.image,
    status: install.status,
    phase: install.phase,
    phases: install.phases,
    error: install.error,
    queue_position: install.queuePosition,
    power_cycles: install.powerCycles,
    started_at: install.createdAt.toISOString(),
    finished_at: install.finishedAt?.toISOString() ?? null,
  };
}

/** What the node's MAC is served on the provisioning network. */
export function presentBootEntry(entry: BootEntry) {
  return { mac: entry.mac, address: entry.address, boot_env: entry.bootEnv, generation: entry.generation, dhcp_enabled: entry.enabled };
}
