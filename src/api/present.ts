import type { PendingClaim } from '../db/claims-repo';
import type { NodeEventRecord } from '../db/events-repo';
import type { NodeRecord } from '../db/nodes-repo';
import type { OperationRecord } from '../db/operations-repo';
import type { TaskRecord } from '../db/tasks-repo';
import { allowedVerbs, TARGET_OF } from '../domain/states';

/** JSON shapes of the API: snake_case, ISO timestamps, no key material beyond the fingerprint. */
export function presentNode(node: NodeRecord) {
  return {
    hostname: node.hostname,
    state: node.state,
    target_state: TARGET_OF[node.state] ?? null,
    allowed_actions: allowedVerbs(node.state),
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
