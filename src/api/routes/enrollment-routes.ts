import { Router } from 'express';
import type { Knex } from 'knex';
import { z } from 'zod';
import { portsOf } from '../../db/enrollment-repo';
import { PROVISION_VERBS } from '../../domain/states';
import { DRIVER_NAMES } from '../../drivers';
import { POWER_TARGETS } from '../../drivers/types';
import type { EnrollmentService } from '../../services/enrollment-service';
import { presentNode } from '../present';
import { hostnameSchema, noQuery, parse } from '../validation';

const mac = z.string().regex(/^([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}$/, 'must be a MAC address like 52:54:00:12:34:56');
const imageSource = z.string().min(1);
const bootOption = z.enum(['local', 'netboot']);
const instanceInfo = z.looseObject({ image_source: imageSource.optional(), boot_option: bootOption.optional() });
/** A change is checked as an enrollment is; null removes a key. */
const instanceInfoChange = z.looseObject({ image_source: imageSource.nullable().optional(), boot_option: bootOption.nullable().optional() });

const enrollSchema = z.strictObject({
  name: hostnameSchema,
  driver: z.enum(DRIVER_NAMES as [string, ...string[]], { error: `must be one of: ${DRIVER_NAMES.join(', ')}` }),
  driver_info: z.record(z.string(), z.unknown()),
  instance_info: instanceInfo.optional(),
  ports: z
    .array(z.strictObject({ address: mac }))
    .refine((ports) => new Set(ports.map((p) => p.address.toLowerCase())).size === ports.length, { error: 'must not name a MAC twice' })
    .optional(),
});

const patchSchema = z
  .strictObject({
    driver_info: z.record(z.string(), z.unknown()).optional(),
    instance_info: instanceInfoChange.optional(),
  })
  .refine((b) => b.driver_info !== undefined || b.instance_info !== undefined, { error: 'must change driver_info or instance_info' });

const provisionSchema = z.strictObject({
  target: z.enum(PROVISION_VERBS, { error: `must be one of: ${PROVISION_VERBS.join(', ')}` }),
});
const powerSchema = z.strictObject({
  target: z.enum(POWER_TARGETS, { error: `must be one of: ${POWER_TARGETS.join(', ')}` }),
});

/** Ironic-style enrollment: POST/PATCH/DELETE nodes, provision and power states. */
export function enrollmentRoutes(knex: Knex, enrollment: EnrollmentService): Router {
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
    const { target } = parse(provisionSchema, req.body);
    const result = await enrollment.provision(node, target);
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
