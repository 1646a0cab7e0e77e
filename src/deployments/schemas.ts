import { z } from 'zod';
import { DEPLOYMENT_NAME, DEPLOYMENT_STATES, NODEROLE_STATES, ROLE_NAME } from '../domain/noderoles';
import { cursorParam, limitParam } from '../api/paging';
import { hostnameSchema, oneValue } from '../api/validation';

/** The request and query schemas of deployments, roles and noderoles: the routes validate with them, the OpenAPI document is made from them. */

export const roleNameSchema = z.string().regex(ROLE_NAME, 'must be a role name: lower-case letters, digits and dashes, at most 63').meta({ id: 'RoleName', example: 'ntp' });
export const deploymentNameSchema = z
  .string()
  .regex(DEPLOYMENT_NAME, 'must be a deployment name: lower-case letters, digits and dashes, at most 63')
  .meta({ id: 'DeploymentName', example: 'storage' });
export const attributesSchema = z.record(z.string(), z.unknown()).meta({ id: 'Attributes', description: 'A JSON object; a key given here wins over the same key at a lower level.' });

/** Every node named once: a bulk request that names a host twice asks something unclear. */
const nodeList = z
  .array(hostnameSchema)
  .min(1, 'must name at least one node')
  .max(10_000, 'must name at most 10,000 nodes; send the rest as another request')
  .superRefine((nodes, ctx) => {
    const repeated = nodes.filter((n, i) => nodes.indexOf(n) !== i);
    if (repeated.length > 0) ctx.addIssue({ code: 'custom', message: `names ${[...new Set(repeated)].join(', ')} more than once; name each node once` });
  });

const roleFields = {
  script: z.string().max(1_000_000).meta({ description: 'The text of an executable, starting with `#!`; run by the node agent with `{"role","hostname","deployment","attributes"}` on stdin.' }),
  requires: z.array(roleNameSchema).max(100).optional().meta({ description: 'Roles that must be active on the same node first.' }),
  attributes: attributesSchema.optional().meta({ description: "The role's defaults." }),
  description: z.string().max(1000).optional(),
  timeout_seconds: z.number().int().min(1).max(86_400).optional().meta({ description: 'The script is killed after this long (default 600).' }),
};
export const createRoleSchema = z.strictObject({ name: roleNameSchema, ...roleFields }).meta({ id: 'RoleCreateRequest' });
/** A built-in role takes only attributes and a description; a script role needs its script again (a PUT replaces). */
export const updateRoleSchema = z.strictObject({ ...roleFields, script: roleFields.script.optional() }).meta({ id: 'RoleUpdateRequest' });

export const createDeploymentSchema = z
  .strictObject({
    name: deploymentNameSchema,
    parent: deploymentNameSchema.optional().meta({ description: 'The parent deployment (default system).' }),
    description: z.string().max(1000).optional(),
  })
  .meta({ id: 'DeploymentCreateRequest' });
export const bindSchema = z
  .strictObject({ role: roleNameSchema, nodes: nodeList, attributes: attributesSchema.optional().meta({ description: "Replaces these noderoles' own attributes." }) })
  .meta({ id: 'BindRequest' });
export const unbindSchema = z.strictObject({ role: roleNameSchema, nodes: nodeList }).meta({ id: 'UnbindRequest' });
export const moveNodesSchema = z.strictObject({ nodes: nodeList }).meta({ id: 'MoveNodesRequest' });
export const attributesBodySchema = z.strictObject({ attributes: attributesSchema }).meta({ id: 'AttributesRequest' });

export const deploymentsQuery = z.strictObject({
  parent: oneValue(deploymentNameSchema).optional().meta({ description: 'Only the children of this deployment.' }),
  state: oneValue(z.enum(DEPLOYMENT_STATES)).optional(),
  limit: limitParam,
  cursor: cursorParam(deploymentNameSchema),
});
export const rolesQuery = z.strictObject({ limit: limitParam, cursor: cursorParam(roleNameSchema) });
export const noderolesQuery = z.strictObject({
  deployment: oneValue(deploymentNameSchema).optional(),
  node: oneValue(hostnameSchema).optional(),
  role: oneValue(roleNameSchema).optional(),
  state: oneValue(z.enum(NODEROLE_STATES)).optional(),
  limit: limitParam,
  cursor: cursorParam(z.number().int().min(1)),
});
export const noderoleIdSchema = z.coerce.number({ error: 'must be a noderole id (a positive integer)' }).int('must be a noderole id (a positive integer)').min(1, 'must be a noderole id (a positive integer)');
