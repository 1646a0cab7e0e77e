import type { DeploymentRecord } from './deployments-repo';
import type { NoderoleRecord } from './noderoles-repo';
import type { RoleRecord } from './roles-repo';

export function presentRole(role: RoleRecord) {
  return {
    name: role.name,
    kind: role.kind,
    description: role.description,
    requires: role.requires,
    attributes: role.attributes,
    script: role.script,
    timeout_seconds: role.timeoutSeconds,
    revision: role.revision,
    builtin: role.source === 'builtin',
    source: role.source,
    created_at: role.createdAt.toISOString(),
    updated_at: role.updatedAt.toISOString(),
  };
}

export function presentDeployment(deployment: DeploymentRecord) {
  return {
    name: deployment.name,
    parent: deployment.parent,
    state: deployment.state,
    description: deployment.description,
    nodes: deployment.nodes,
    noderole_counts: deployment.noderoleCounts,
    created_at: deployment.createdAt.toISOString(),
    updated_at: deployment.updatedAt.toISOString(),
    committed_at: deployment.committedAt?.toISOString() ?? null,
  };
}

export function presentNoderole(noderole: NoderoleRecord) {
  return {
    id: noderole.id,
    deployment: noderole.deployment,
    role: noderole.role,
    node: noderole.hostname,
    state: noderole.state,
    attributes: noderole.attributes,
    effective_attributes: noderole.effectiveAttributes,
    requires: noderole.requires,
    error: noderole.error,
    task_id: noderole.taskId,
    operation_id: noderole.operationId,
    runs: noderole.runs,
    result: noderole.result,
    created_at: noderole.createdAt.toISOString(),
    updated_at: noderole.updatedAt.toISOString(),
    started_at: noderole.startedAt?.toISOString() ?? null,
    finished_at: noderole.finishedAt?.toISOString() ?? null,
  };
}
