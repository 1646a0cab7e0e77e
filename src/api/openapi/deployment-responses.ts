import { z } from 'zod';
import { DEPLOYMENT_STATES, NODEROLE_STATES, ROLE_KINDS, type NoderoleState } from '../../domain/noderoles';
import type { deploymentRoles, DeploymentTree } from '../../deployments/deployments-repo';
import type { presentDeployment, presentNoderole, presentRole } from '../../deployments/present';
import { noderoleState, same, timestamp } from './responses';

/**
 * What the deployments, roles and noderoles endpoints answer (src/deployments/routes.ts), pinned to
 * src/deployments/present.ts and the repos' types at compile time as ./responses does for the rest.
 */

const jsonObject = z.record(z.string(), z.unknown());
const count = z.number().int().min(0);
const taskId = z.uuid().meta({ description: 'The anneal task: GET /api/v1/tasks/{id} shows its noderoles and their progress.' });
const deploymentState = z.enum(DEPLOYMENT_STATES).meta({ id: 'DeploymentState', description: 'Only a proposed deployment takes changes; commit hands its noderoles to the annealer.' });

export const roleSchema = z
  .strictObject({
    name: z.string(),
    kind: z.enum(ROLE_KINDS).meta({ description: 'script: run by the node agent; os-install and commission are built in.' }),
    description: z.string(),
    requires: z.array(z.string()).meta({ description: 'Roles that must be active on the same node first.' }),
    attributes: jsonObject.meta({ description: "The role's defaults: the lowest level of a noderole's effective attributes." }),
    script: z.string().nullable().meta({ description: 'null for a built-in role.' }),
    timeout_seconds: z.number().int(),
    revision: z.number().int().meta({ description: 'Bumped by every change of what the role does: a re-commit runs its active and error noderoles again.' }),
    builtin: z.boolean(),
    source: z.string().meta({ description: 'Where the role was defined: api, file (ROLES_DIR) or builtin.' }),
    created_at: timestamp,
    updated_at: timestamp,
  })
  .meta({ id: 'Role' });
same<z.infer<typeof roleSchema>, ReturnType<typeof presentRole>>(true);

const noderoleCounts = z
  .strictObject(Object.fromEntries(NODEROLE_STATES.map((state) => [state, count])) as Record<NoderoleState, typeof count>)
  .meta({ id: 'NoderoleCounts', description: "The deployment's noderoles by state." });

export const deploymentSchema = z
  .strictObject({
    name: z.string(),
    parent: z.string().nullable().meta({ description: 'null for system, the root.' }),
    state: deploymentState,
    description: z.string(),
    nodes: count.meta({ description: 'How many nodes belong to it.' }),
    noderole_counts: noderoleCounts,
    created_at: timestamp,
    updated_at: timestamp,
    committed_at: timestamp.nullable(),
  })
  .meta({ id: 'Deployment' });
same<z.infer<typeof deploymentSchema>, ReturnType<typeof presentDeployment>>(true);

export const noderoleSchema = z
  .strictObject({
    id: z.number().int(),
    deployment: z.string(),
    role: z.string(),
    node: z.string().meta({ description: "The node's host name." }),
    state: noderoleState,
    attributes: jsonObject.meta({ description: "The noderole's own attributes: the highest level." }),
    effective_attributes: jsonObject.meta({ description: "What it runs with: the role's defaults, then the deployment's for the role, then its own (later wins per key)." }),
    requires: z.array(z.string()),
    error: z.string().nullable(),
    task_id: z.string().nullable().meta({ description: 'The anneal task that last put it in todo.' }),
    operation_id: z.number().int().nullable().meta({ description: 'The operation its last run was on its node.' }),
    runs: count.meta({ description: 'How many times it was handed to its node.' }),
    result: jsonObject
      .nullable()
      .meta({ description: "The last run's result (a script role: exit_code, duration_ms, and in GET /noderoles/{id} only the tails of stdout and stderr); null before one." }),
    created_at: timestamp,
    updated_at: timestamp,
    started_at: timestamp.nullable(),
    finished_at: timestamp.nullable(),
  })
  .meta({ id: 'Noderole' });
same<z.infer<typeof noderoleSchema>, ReturnType<typeof presentNoderole>>(true);

/** A deployment and its descendants (deployments are few: the subtree is shown whole). */
export const deploymentTreeSchema = z
  .strictObject({
    name: z.string(),
    state: deploymentState,
    nodes: count,
    get children(): z.ZodArray<typeof deploymentTreeSchema> {
      return z.array(deploymentTreeSchema);
    },
  })
  .meta({ id: 'DeploymentTree', description: 'A deployment and its descendants, each with its node count.' });
same<z.infer<typeof deploymentTreeSchema>, DeploymentTree>(true);

export const deploymentRoleSchema = z
  .strictObject({ role: z.string(), attributes: jsonObject.meta({ description: "The deployment's attributes for the role: above the role's defaults, below a noderole's own." }) })
  .meta({ id: 'DeploymentRole' });
same<z.infer<typeof deploymentRoleSchema>, Awaited<ReturnType<typeof deploymentRoles>>[number]>(true);

export const deploymentDetailSchema = deploymentSchema
  .extend({
    path: z.array(z.string()).meta({ description: 'The names from system down to this deployment.' }),
    // Not given a description of its own here: a copy of a recursive schema would break its $ref into an extra component.
    tree: deploymentTreeSchema,
    roles: z.array(deploymentRoleSchema),
    noderoles: z.array(noderoleSchema).meta({ description: 'The first 1000 by id; GET /api/v1/noderoles?deployment= pages through all of them.' }),
    noderoles_truncated: z.boolean().meta({ description: 'More noderoles than those shown.' }),
  })
  .meta({ id: 'DeploymentDetail' });

/** 202 of a commit or a retry; Location names the anneal task. */
export const annealAcceptedSchema = z
  .strictObject({ task_id: taskId, deployment: z.string(), noderoles: count.meta({ description: 'How many noderoles the task put in todo.' }) })
  .meta({ id: 'AnnealAccepted' });

export const bindResponseSchema = z
  .strictObject({ noderoles: z.array(noderoleSchema).meta({ description: "The role's noderoles on the named nodes and those of the roles it requires, by id." }) })
  .meta({ id: 'BindResponse' });

export const unbindResponseSchema = z.strictObject({ removed: count.meta({ description: 'How many noderoles were removed.' }) }).meta({ id: 'UnbindResponse' });

export const moveNodesResponseSchema = z
  .strictObject({ moved: z.array(z.string()).meta({ description: 'The nodes that moved; those already in the deployment are left out.' }) })
  .meta({ id: 'MoveNodesResponse' });
