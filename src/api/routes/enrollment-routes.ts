import { Router } from 'express';
import type { Knex } from 'knex';
import { z } from 'zod';
import { portsOf } from '../../db/enrollment-repo';
import { PROVISION_VERBS } from '../../domain/states';
import { DRIVER_NAMES } from '../../drivers';
import { POWER_TARGETS } from '../../drivers/types';
import type { DeployService } from '../../services/deploy-service';
import type { EnrollmentService } from '../../services/enrollment-service';
import { imageNameSchema } from '../../images/image-routes';
import { presentNode } from '../present';
import { hostnameSchema, noQuery, parse } from '../validation';

const mac = z.string().regex(/^([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}$/, 'must be a MAC address like 52:54:00:12:34:56');
const imageSource = z.string().min(1);
const bootOption = z.enum(['local', 'netboot']);
const instanceInfo = z.looseObject({ image_source: imageSource.optional(), boot_option: bootOption.optional() });
/** A change is checked as an enrollment is; null removes a key. */
const instanceInfoChange = z.looseObject({ image_source: imageSource.nullable().optional(), boot_option: bootOption.nullable().optional() });

const portsSchema = z
  .array(z.strictObject({ address: mac }))
  .refine((ports) => new Set(ports.map((p) => p.address.toLowerCase())).size === ports.length, { error: 'must not name a MAC twice' });

export const enrollSchema = z
  .strictObject({
    name: hostnameSchema,
    driver: z.enum(DRIVER_NAMES as [string, ...string[]], { error: `must be one of: ${DRIVER_NAMES.join(', ')}` }),
    driver_info: z.record(z.string(), z.unknown()).meta({ description: "The driver's settings (BMC address, user, password...); secret fields are write-only." }),
    instance_info: instanceInfo.optional(),
    ports: portsSchema.optional(),
  })
  .meta({ id: 'EnrollRequest' });

export const patchSchema = z
  .strictObject({
    driver_info: z.record(z.string(), z.unknown()).optional(),
    instance_info: instanceInfoChange.optional(),
    ports: portsSchema.optional().meta({ description: "Replaces the node's MACs." }),
  })
  .refine((b) => b.driver_info !== undefined || b.instance_info !== undefined || b.ports !== undefined, { error: 'must change driver_info, instance_info or ports' })
  .meta({ id: 'NodeChangeRequest', description: 'Merged into the node; a null value removes a key. At least one of the fields.' });

export const provisionSchema = z
  .strictObject({
    target: z.enum(PROVISION_VERBS, { error: `must be one of: ${PROVISION_VERBS.join(', ')}` }),
    image: imageNameSchema.optional(),
  })
  .superRefine((b, ctx) => {
    const installs = b.target === 'deploy' || b.target === 'rebuild';
    if (installs && b.image === undefined) ctx.addIssue({ code: 'custom', path: ['image'], message: `is required to ${b.target}` });
    if (!installs && b.image !== undefined) ctx.addIssue({ code: 'custom', path: ['image'], message: `applies to deploy and rebuild only, not ${b.target}` });
  })
  .meta({ id: 'ProvisionRequest', description: '`image` is required by deploy and rebuild, and refused with any other target.' });
export const powerSchema = z
  .strictObject({
    target: z.enum(POWER_TARGETS, { error: `must be one of: ${POWER_TARGETS.join(', ')}` }),
  })
  .meta({ id: 'PowerRequest' });

/** Ironic-style enrollment: POST/PATCH/DELETE nodes, provision and power states. */
export function enrollmentRoutes(knex: Knex, enrollment: EnrollmentService, deploys: DeployService): Router {
  const router = Router();
  const name = (raw: unknown) => parse(hostnameSchema, raw, 'name');
  const withPorts = async (node: Parameters<typeof presentNode>[0]) => ({ ...presentNode(node), ports: await portsOf(knex, node.hostname) });

  router.post('/nodes', async (req, res) => {
    const body = parse(enrollSchema, req.body);
    const node = await enrollment.enroll(body);
    res.status(201).location(`/api/v1/nodes/${node.hostname}`).json(await withPorts(node));
  });

  router.patch('/nodes/:name', async (req, res) => {
    const body = parse(patchSchema, req.body);
    res.json(await withPorts(await enrollment.update(name(req.params.name), body)));
  });

  router.delete('/nodes/:name', async (req, res) => {
    await enrollment.delete(name(req.params.name));
    res.status(204).end();
  });

  router.put('/nodes/:name/states/provision', async (req, res) => {
    const node = name(req.params.name);
    const { target, image } = parse(provisionSchema, req.body);
    if (target === 'deploy' || target === 'rebuild') {
      // One node's install goes through the same queue and cap as a bulk one.
      const taskId = await deploys.install(target, [node], image!);
      res.status(202).location(`/api/v1/tasks/${taskId}`).json({ task_id: taskId, hostname: node, state: (await enrollment.stateOf(node)) ?? null });
      return;
    }
    const result = target === 'abort' ? await deploys.abort(node) : await enrollment.provision(node, target);
    res.status(202).location(`/api/v1/tasks/${result.task_id}`).json({ task_id: result.task_id, hostname: node, state: result.state });
  });

  router.get('/nodes/:name/states/power', async (req, res) => {
    parse(noQuery, req.query, 'query');
    res.json(await enrollment.readPower(name(req.params.name)));
  });

  router.put('/nodes/:name/states/power', async (req, res) => {
    const node = name(req.params.name);
    const { target } = parse(powerSchema, req.body);
    const result = await enrollment.changePower(node, target);
    res.status(202).location(`/api/v1/tasks/${result.task_id}`).json({ task_id: result.task_id, hostname: node, target });
  });

  return router;
}
