import { Router } from 'express';
import type { Knex } from 'knex';
import { z } from 'zod';
import { NotFound, ValidationFailed } from '../domain/errors';
import { hostnameSchema, paginationSchema, parse } from '../api/validation';
import { parseSshAddress } from './address';
import type { SshClientKey } from './client-key';
import { forgetKnownHost, listKnownHosts } from './discoveries-repo';
import type { DiscoveryService } from './discovery-service';

export const discoverSchema = z
  .strictObject({
    // Each address is checked by the service, so that every malformed one is named, not only the first.
    addresses: z.array(z.string().max(300)).max(100_000),
    ssh: z
      .strictObject({
        user: z
          .string()
          .regex(/^[a-z_][a-z0-9_.-]{0,31}$/i, 'must be a user name (letters, digits, _ . -)')
          .optional(),
        host_keys: z.record(z.string().max(300), z.string().max(10_000)).optional(),
        host_key_policy: z.enum(['pinned', 'tofu']).optional(),
      })
      .optional(),
    hostnames: z.record(z.string().max(300), hostnameSchema).optional(),
    extra_vars: z.record(z.string(), z.unknown()).optional(),
  })
  .meta({
    id: 'DiscoverRequest',
    description: 'Addresses as host, host:port or [v6]:port; under the pinned policy every address needs its host key.',
  });

/** Adding nodes by address (POST /discover/nodes) and the service's SSH identity and known hosts. */
export function sshRoutes(knex: Knex, discovery: DiscoveryService, clientKey: SshClientKey): Router {
  const router = Router();

  router.post('/discover/nodes', async (req, res) => {
    const body = parse(discoverSchema, req.body);
    const { taskId, addresses } = await discovery.submit(body);
    res.status(202).location(`/api/v1/tasks/${taskId}`).json({ task_id: taskId, kind: 'discover', addresses });
  });

  // For the operator's authorized_keys on the machines to add.
  router.get('/ssh/public_key', (_req, res) => {
    res.json({ public_key: clientKey.publicKey, fingerprint: clientKey.fingerprint });
  });

  router.get('/ssh/known_hosts', async (req, res) => {
    const page = parse(paginationSchema, req.query, 'query');
    const hosts = await listKnownHosts(knex, page);
    res.json(hosts.map((h) => ({ address: h.address, key_type: h.type, fingerprint: h.fingerprint, first_seen_at: h.firstSeenAt.toISOString(), last_seen_at: h.lastSeenAt.toISOString() })));
  });

  // Forgets a tofu key (the host was reinstalled): the next contact records the key it then shows.
  router.delete('/ssh/known_hosts/:address', async (req, res) => {
    const parsed = parseSshAddress(String(req.params.address));
    if ('problem' in parsed) throw new ValidationFailed([{ field: 'address', problem: `${JSON.stringify(req.params.address)} ${parsed.problem}` }]);
    if (!(await forgetKnownHost(knex, parsed.key))) throw new NotFound(`no host key is recorded for ${parsed.key}`, { address: parsed.key });
    res.status(204).end();
  });

  return router;
}
