import { Router, type Response } from 'express';
import type { Knex } from 'knex';
import { NotFound } from '../domain/errors';
import { sendPage } from '../api/paging';
import { noQuery, parse } from '../api/validation';
import type { AnnealTask } from './noderoles-repo';
import {
  createDeployment,
  deploymentRoles,
  getDeployment,
  moveNodes,
  pageDeployments,
  pathOf,
  proposeDeployment,
  setDeploymentRole,
  subtreeOf,
} from './deployments-repo';
import type { DeploymentService } from './deployment-service';
import { bindRole, getNoderole, pageNoderoles, setNoderoleAttributes, unbindRole } from './noderoles-repo';
import { presentDeployment, presentNoderole, presentRole } from './present';
import { deleteRole, getRole, pageRoles, saveRoles } from './roles-repo';
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
} from './schemas';

/** How much of a deployment GET /deployments/{name} shows inline; the rest is paged by GET /noderoles. */
export const SHOWN_NODEROLES = 1000;

function annealAccepted(res: Response, task: AnnealTask) {
  res.status(202).location(`/api/v1/tasks/${task.taskId}`).json({ task_id: task.taskId, deployment: task.deployment, noderoles: task.noderoles });
}

/** OpenCrowbar's deployments, roles and noderoles (issue #12): thin routes over the repos and the service. */
export function deploymentRoutes(knex: Knex, service: DeploymentService): Router {
  const router = Router();
  const deploymentName = (value: unknown) => parse(deploymentNameSchema, value, 'name');

  // --- roles ---
  router.get('/roles', async (req, res) => {
    const { limit, cursor } = parse(rolesQuery, req.query, 'query');
    sendPage(req, res, await pageRoles(knex, { limit, after: cursor }), presentRole, { limit });
  });
  router.post('/roles', async (req, res) => {
    const [role] = await saveRoles(knex, [parse(createRoleSchema, req.body)], 'create', 'api');
    res.status(201).location(`/api/v1/roles/${role!.name}`).json(presentRole(role!));
  });
  router.get('/roles/:name', async (req, res) => {
    parse(noQuery, req.query, 'query');
    const name = parse(roleNameSchema, req.params.name, 'name');
    const role = await getRole(knex, name);
    if (!role) throw new NotFound(`no role ${name}`, { role: name });
    res.json(presentRole(role));
  });
  router.put('/roles/:name', async (req, res) => {
    const name = parse(roleNameSchema, req.params.name, 'name');
    const [role] = await saveRoles(knex, [{ ...parse(updateRoleSchema, req.body), name }], 'replace', 'api');
    res.json(presentRole(role!));
  });
  router.delete('/roles/:name', async (req, res) => {
    await deleteRole(knex, parse(roleNameSchema, req.params.name, 'name'));
    res.status(204).end();
  });

  // --- deployments ---
  router.get('/deployments', async (req, res) => {
    const { limit, cursor, ...filter } = parse(deploymentsQuery, req.query, 'query');
    sendPage(req, res, await pageDeployments(knex, filter, { limit, after: cursor }), presentDeployment, { limit });
  });
  router.post('/deployments', async (req, res) => {
    const body = parse(createDeploymentSchema, req.body);
    await createDeployment(knex, { name: body.name, parent: body.parent ?? 'system', description: body.description ?? '' });
    res.status(201).location(`/api/v1/deployments/${body.name}`).json(presentDeployment((await getDeployment(knex, body.name))!));
  });
  router.get('/deployments/:name', async (req, res) => {
    parse(noQuery, req.query, 'query');
    const name = deploymentName(req.params.name);
    const deployment = await getDeployment(knex, name);
    if (!deployment) throw new NotFound(`no deployment ${name}`, { deployment: name });
    const [tree, path, roles, noderoles] = await Promise.all([
      subtreeOf(knex, name),
      pathOf(knex, name),
      deploymentRoles(knex, name),
      pageNoderoles(knex, { deployment: name }, { limit: SHOWN_NODEROLES }),
    ]);
    res.json({ ...presentDeployment(deployment), path, tree, roles, noderoles: noderoles.rows.map(presentNoderole), noderoles_truncated: noderoles.next !== null });
  });
  router.delete('/deployments/:name', async (req, res) => {
    await service.delete(deploymentName(req.params.name));
    res.status(204).end();
  });
  router.post('/deployments/:name/propose', async (req, res) => {
    const name = deploymentName(req.params.name);
    await proposeDeployment(knex, name);
    res.json(presentDeployment((await getDeployment(knex, name))!));
  });
  router.post('/deployments/:name/commit', async (req, res) => {
    annealAccepted(res, await service.commit(deploymentName(req.params.name)));
  });
  router.put('/deployments/:name/roles/:role', async (req, res) => {
    const name = deploymentName(req.params.name);
    const role = parse(roleNameSchema, req.params.role, 'role');
    const { attributes } = parse(attributesBodySchema, req.body);
    await setDeploymentRole(knex, name, role, attributes);
    res.json({ role, attributes });
  });
  router.post('/deployments/:name/bind', async (req, res) => {
    const name = deploymentName(req.params.name);
    const body = parse(bindSchema, req.body);
    const noderoles = await bindRole(knex, { deployment: name, role: body.role, hostnames: body.nodes, attributes: body.attributes });
    res.json({ noderoles: noderoles.map(presentNoderole) });
  });
  router.post('/deployments/:name/unbind', async (req, res) => {
    const name = deploymentName(req.params.name);
    const body = parse(unbindSchema, req.body);
    res.json({ removed: await unbindRole(knex, { deployment: name, role: body.role, hostnames: body.nodes }) });
  });
  router.post('/deployments/:name/nodes', async (req, res) => {
    const name = deploymentName(req.params.name);
    res.json({ moved: await moveNodes(knex, name, parse(moveNodesSchema, req.body).nodes) });
  });

  // --- noderoles ---
  router.get('/noderoles', async (req, res) => {
    const { limit, cursor, node, ...filter } = parse(noderolesQuery, req.query, 'query');
    sendPage(req, res, await pageNoderoles(knex, { ...filter, hostname: node }, { limit, after: cursor }), presentNoderole, { limit });
  });
  router.get('/noderoles/:id', async (req, res) => {
    parse(noQuery, req.query, 'query');
    const id = parse(noderoleIdSchema, req.params.id, 'id');
    const noderole = await getNoderole(knex, id);
    if (!noderole) throw new NotFound(`no noderole ${id}`, { id });
    res.json(presentNoderole(noderole));
  });
  router.patch('/noderoles/:id', async (req, res) => {
    const id = parse(noderoleIdSchema, req.params.id, 'id');
    await setNoderoleAttributes(knex, id, parse(attributesBodySchema, req.body).attributes);
    res.json(presentNoderole((await getNoderole(knex, id))!));
  });
  router.post('/noderoles/:id/retry', async (req, res) => {
    annealAccepted(res, await service.retry(parse(noderoleIdSchema, req.params.id, 'id')));
  });
  return router;
}
