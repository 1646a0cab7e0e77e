import { z } from 'zod';
import type { ZodOpenApiPathsObject } from 'zod-openapi';
import {
  attributesBodySchema,
  bindSchema,
  createDeploymentSchema,
  createRoleSchema,
  deploymentNameSchema,
  deploymentsQuery,
  moveNodesSchema,
  noderoleIdSchema,
  noderolesQuery,
  roleNameSchema,
  rolesQuery,
  unbindSchema,
  updateRoleSchema,
} from '../../deployments/schemas';
import {
  annealAcceptedSchema,
  bindResponseSchema,
  deploymentDetailSchema,
  deploymentRoleSchema,
  deploymentSchema,
  moveNodesResponseSchema,
  noderoleSchema,
  roleSchema,
  unbindResponseSchema,
} from './deployment-responses';
import { jsonBody, noContent, ok, operator, refusals, withLocation } from './operation-parts';
import { pageHeaders } from './responses';

const ANNEAL_LOCATION = '/api/v1/tasks/{task_id}: the anneal task, with its noderoles and their progress.';
const NOT_PROPOSED = 'The deployment is committed (`state` says so): propose it first. system never is proposed.';
const NO_DEPLOYMENT = 'No such deployment.';
const ANNEAL_UNAVAILABLE = 'Temporal did not take the wake-up of the deployment\'s annealer: the request was rolled back, nothing changed.';

const byRole = { path: z.object({ name: roleNameSchema }) };
const byDeployment = { path: z.object({ name: deploymentNameSchema }) };
const byNoderole = { path: z.object({ id: noderoleIdSchema.meta({ description: 'A noderole id (a positive integer).' }) }) };

const ROLE_REFUSED_400 =
  'Invalid body, a script that does not start with `#!`, or a dependency graph that does not hold: an unknown required role, a role requiring itself, ' +
  'or a cycle (`fields` names `<role>.requires` and the cycle, `a -> b -> a`).';

/** OpenCrowbar's roles: named units of work, their defaults and what they require on the same node. */
const rolePaths: ZodOpenApiPathsObject = {
  '/api/v1/roles': {
    get: operator({
      tags: ['roles'],
      operationId: 'listRoles',
      summary: 'Roles, by name',
      description: 'Built-in (os-install, commission), defined by the API, or loaded from ROLES_DIR at start-up. Paged: see the response headers.',
      requestParams: { query: rolesQuery },
      responses: { 200: { ...ok('A page of roles.', z.array(roleSchema)), headers: pageHeaders } },
    }),
    post: operator({
      tags: ['roles'],
      operationId: 'createRole',
      summary: 'Define a script role',
      description: 'The script is run by the node agent with `{"role","hostname","deployment","attributes"}` on stdin; exit 0 makes the noderole active.',
      requestBody: jsonBody(createRoleSchema),
      responses: {
        201: withLocation('Created, at revision 1.', roleSchema, '/api/v1/roles/{name}'),
        ...refusals({ 400: ROLE_REFUSED_400, 409: 'A role of that name exists (built in or not): change it with PUT.' }),
      },
    }),
  },
  '/api/v1/roles/{name}': {
    get: operator({
      tags: ['roles'],
      operationId: 'getRole',
      summary: 'A role',
      requestParams: byRole,
      responses: { 200: ok('The role.', roleSchema), ...refusals({ 404: 'No such role.' }) },
    }),
    put: operator({
      tags: ['roles'],
      operationId: 'replaceRole',
      summary: "Replace a role's definition",
      description:
        'The body replaces the definition (a script role needs its script again). A change bumps the revision, so that a re-commit runs the ' +
        "role's active and error noderoles again; a body equal to the definition changes nothing. A built-in role takes only `attributes` and `description`.",
      requestParams: byRole,
      requestBody: jsonBody(updateRoleSchema),
      responses: {
        200: ok('The role as it is now.', roleSchema),
        ...refusals({ 400: `${ROLE_REFUSED_400} For a built-in role: a \`script\` or \`requires\`.`, 404: 'No such role.' }),
      },
    }),
    delete: operator({
      tags: ['roles'],
      operationId: 'deleteRole',
      summary: 'Delete a role nothing uses',
      requestParams: byRole,
      responses: {
        204: noContent,
        ...refusals({ 404: 'No such role.', 409: 'The role is built in, required by other roles (`required_by`), or bound to nodes (unbind it first).' }),
      },
    }),
  },
};

/** The deployment tree rooted at system: a node belongs to one deployment, and its noderoles to it. */
const treePaths: ZodOpenApiPathsObject = {
  '/api/v1/deployments': {
    get: operator({
      tags: ['deployments'],
      operationId: 'listDeployments',
      summary: 'Deployments, by name',
      description: 'Paged: see the response headers.',
      requestParams: { query: deploymentsQuery },
      responses: { 200: { ...ok('A page of deployments.', z.array(deploymentSchema)), headers: pageHeaders } },
    }),
    post: operator({
      tags: ['deployments'],
      operationId: 'createDeployment',
      summary: 'Create a deployment, proposed, under a parent (default system)',
      requestBody: jsonBody(createDeploymentSchema),
      responses: {
        201: withLocation('Created, proposed and empty.', deploymentSchema, '/api/v1/deployments/{name}'),
        ...refusals({ 404: 'No such parent deployment.', 409: 'A deployment of that name exists.' }),
      },
    }),
  },
  '/api/v1/deployments/{name}': {
    get: operator({
      tags: ['deployments'],
      operationId: 'getDeployment',
      summary: 'A deployment with its path, subtree, roles and first 1000 noderoles',
      requestParams: byDeployment,
      responses: { 200: ok('The deployment.', deploymentDetailSchema), ...refusals({ 404: NO_DEPLOYMENT }) },
    }),
    delete: operator({
      tags: ['deployments'],
      operationId: 'deleteDeployment',
      summary: 'Delete an empty deployment',
      requestParams: byDeployment,
      responses: {
        204: noContent,
        ...refusals({
          404: NO_DEPLOYMENT,
          409: 'system, or a deployment with child deployments (`children`) or nodes (`nodes`: move them out first, e.g. into system; a node takes its noderoles with it, so unbind them first).',
        }),
      },
    }),
  },
  '/api/v1/deployments/{name}/propose': {
    post: operator({
      tags: ['deployments'],
      operationId: 'proposeDeployment',
      summary: 'Put a committed deployment back to proposed, so that it takes changes',
      description: 'A proposed deployment hands out no new work; its noderoles keep their states. Proposing a proposed deployment changes nothing.',
      requestParams: byDeployment,
      responses: {
        200: ok('The deployment, proposed.', deploymentSchema),
        ...refusals({
          404: NO_DEPLOYMENT,
          409: 'system, or a deployment being annealed: noderoles of it are todo or transition (`noderoles` names their ids); propose it when its commit task has ended.',
        }),
      },
    }),
  },
  '/api/v1/deployments/{name}/commit': {
    post: operator({
      tags: ['deployments'],
      operationId: 'commitDeployment',
      summary: "Commit: its proposed noderoles, and those whose attributes or role changed since their last run, go to todo for the deployment's annealer",
      description:
        'Validated as a whole before anything changes. The annealer hands each todo noderole to its node\'s operation queue once every role it requires ' +
        'on the node is active. Unchanged active and error noderoles do not run again. GET the task for its noderoles and their progress.',
      requestParams: byDeployment,
      responses: {
        202: withLocation('Committed; the anneal task follows it.', annealAcceptedSchema, ANNEAL_LOCATION),
        ...refusals({
          404: NO_DEPLOYMENT,
          409:
            'Nothing was committed: the deployment is not proposed (`state`); or `offenders` names every noderole that cannot run, by node: a role it ' +
            'requires is not bound on the node, an os-install without an `image` attribute or naming an unregistered image, a node without a BMC or a port MAC; ' +
            'or os-install noderoles and no provisioning network configured.',
          503: ANNEAL_UNAVAILABLE,
        }),
      },
    }),
  },
  '/api/v1/deployments/{name}/roles/{role}': {
    put: operator({
      tags: ['deployments'],
      operationId: 'setDeploymentRole',
      summary: "Add a role to the deployment, or replace the deployment's attributes for it",
      description: "The deployment's attributes for a role sit above the role's defaults and below a noderole's own.",
      requestParams: { path: z.object({ name: deploymentNameSchema, role: roleNameSchema }) },
      requestBody: jsonBody(attributesBodySchema),
      responses: {
        200: ok("The role's attributes in the deployment.", deploymentRoleSchema),
        ...refusals({ 404: 'No such deployment, or no such role.', 409: NOT_PROPOSED }),
      },
    }),
  },
  '/api/v1/deployments/{name}/bind': {
    post: operator({
      tags: ['deployments', 'noderoles'],
      operationId: 'bindRole',
      summary: 'Bind a role, and the roles it requires, to nodes',
      description:
        'One noderole per (role, node), proposed. The role is added to the deployment if absent; the roles it requires (transitively) are bound on the same ' +
        'nodes; a node still in system moves into the deployment. Binding a bound role again changes nothing, except its own attributes when given.',
      requestParams: byDeployment,
      requestBody: jsonBody(bindSchema),
      responses: {
        200: ok('The noderoles of the role and of those it requires on the named nodes.', bindResponseSchema),
        ...refusals({
          404: 'No such deployment or role, or (`offenders`) an unknown node; nothing was bound.',
          409:
            `${NOT_PROPOSED} Or \`offenders\` names every node that cannot join it: in another deployment (move it first), or leaving system with an ` +
            'operation queued or running. Nothing was bound.',
        }),
      },
    }),
  },
  '/api/v1/deployments/{name}/unbind': {
    post: operator({
      tags: ['deployments', 'noderoles'],
      operationId: 'unbindRole',
      summary: "Remove a role's noderoles from nodes",
      description: 'The nodes stay in the deployment; the roles bound with it as its requirements stay bound.',
      requestParams: byDeployment,
      requestBody: jsonBody(unbindSchema),
      responses: {
        200: ok('Removed.', unbindResponseSchema),
        ...refusals({
          404: `${NO_DEPLOYMENT} Or no such role.`,
          409:
            `${NOT_PROPOSED} Or \`offenders\` names every node where it cannot be removed: no such noderole there, the noderole is running (transition), ` +
            'or another role bound on the node requires it. Nothing was removed.',
        }),
      },
    }),
  },
  '/api/v1/deployments/{name}/nodes': {
    post: operator({
      tags: ['deployments'],
      operationId: 'moveNodes',
      summary: 'Move nodes into the deployment (into system to give them back)',
      description: 'Every node moves or none does. The deployment may be proposed or committed.',
      requestParams: byDeployment,
      requestBody: jsonBody(moveNodesSchema),
      responses: {
        200: ok('Moved.', moveNodesResponseSchema),
        ...refusals({
          404: 'No such deployment, or (`offenders`) an unknown node; nothing moved.',
          409: '`offenders` names every node that cannot move: an operation queued or running on it, or noderoles bound in the deployment it leaves (unbind them first). Nothing moved.',
        }),
      },
    }),
  },
};

/** Noderoles: one role on one node, in the node's deployment. */
const noderolePaths: ZodOpenApiPathsObject = {
  '/api/v1/noderoles': {
    get: operator({
      tags: ['noderoles'],
      operationId: 'listNoderoles',
      summary: 'Noderoles, by id',
      description: 'Filtered by deployment, node, role and state. Paged: see the response headers.',
      requestParams: { query: noderolesQuery },
      responses: { 200: { ...ok('A page of noderoles.', z.array(noderoleSchema)), headers: pageHeaders } },
    }),
  },
  '/api/v1/noderoles/{id}': {
    get: operator({
      tags: ['noderoles'],
      operationId: 'getNoderole',
      summary: 'A noderole with its effective attributes and last run',
      requestParams: byNoderole,
      responses: { 200: ok('The noderole.', noderoleSchema), ...refusals({ 404: 'No such noderole.' }) },
    }),
    patch: operator({
      tags: ['noderoles'],
      operationId: 'changeNoderole',
      summary: "Replace a noderole's own attributes",
      requestParams: byNoderole,
      requestBody: jsonBody(attributesBodySchema),
      responses: {
        200: ok('The noderole as changed.', noderoleSchema),
        ...refusals({ 404: 'No such noderole.', 409: "Its deployment is committed: propose it first." }),
      },
    }),
  },
  '/api/v1/noderoles/{id}/retry': {
    post: operator({
      tags: ['noderoles'],
      operationId: 'retryNoderole',
      summary: 'Run a noderole in error again, with the noderoles it blocked on its node',
      requestParams: byNoderole,
      responses: {
        202: withLocation('Back in todo; the anneal task follows it.', annealAcceptedSchema, ANNEAL_LOCATION),
        ...refusals({
          404: 'No such noderole.',
          409: 'The noderole is not in error (invalid_state, with its `state`), or its deployment is proposed (commit it instead).',
          503: ANNEAL_UNAVAILABLE,
        }),
      },
    }),
  },
};

/** Issue #12: roles, the deployment tree and noderoles, annealed per deployment. */
export const deploymentPaths: ZodOpenApiPathsObject = { ...rolePaths, ...treePaths, ...noderolePaths };
