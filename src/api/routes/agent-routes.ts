import { Router, type Request } from 'express';
import { z } from 'zod';
import { SIGNATURE_HEADERS } from '../../identity/request-signature';
import type { NodeService, SignedRequest } from '../../services/node-service';
import { fingerprintSchema, hostnameSchema, parse } from '../validation';

export const announceSchema = z
  .strictObject({
    hostname: hostnameSchema,
    fingerprint: fingerprintSchema,
    public_key: z.string().min(1).max(10_000).meta({ description: 'The agent\'s EC P-256 public key, one PEM "BEGIN PUBLIC KEY" block.' }),
    address: z.url({ protocol: /^https$/, error: 'must be an https:// URL' }).meta({ description: 'Where the service reaches the agent.' }),
  })
  .meta({ id: 'AnnounceRequest' });

export const readySchema = z.strictObject({ hostname: hostnameSchema }).meta({ id: 'ReadyRequest' });

export function signedRequest(req: Request): SignedRequest {
  return {
    method: req.method,
    path: req.originalUrl,
    rawBody: (req as Request & { rawBody?: string }).rawBody ?? '',
    timestamp: req.get(SIGNATURE_HEADERS.timestamp),
    signature: req.get(SIGNATURE_HEADERS.signature),
  };
}

/** Endpoints the agents call; each request is authenticated by the agent's own key, not the token. */
export function agentRoutes(nodes: NodeService): Router {
  const router = Router();
  router.post('/unmanaged_nodes', async (req, res) => {
    const body = parse(announceSchema, req.body);
    const { created, response } = await nodes.announce(body, signedRequest(req));
    res.status(created ? 201 : 200).json(response);
  });
  router.post('/agent/ready', async (req, res) => {
    const body = parse(readySchema, req.body);
    res.status(202).json(await nodes.ready(body.hostname, signedRequest(req)));
  });
  return router;
}
