import { Router } from 'express';
import { z } from 'zod';
import { Unauthorized } from '../domain/errors';
import { fingerprintSchema, parse } from '../api/validation';
import type { BootService, InstallerCallback } from './boot-service';

const sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lower-case hex digits');
const callbackSchema = z.discriminatedUnion('event', [
  z.strictObject({ event: z.literal('installing') }),
  z.strictObject({ event: z.literal('progress'), percent: z.number().min(0).max(100) }),
  z.strictObject({ event: z.literal('image_written'), sha256 }),
  z.strictObject({ event: z.literal('installed'), sha256, agent_fingerprint: fingerprintSchema }),
  z.strictObject({ event: z.literal('failed'), reason: z.string().min(1).max(2000) }),
]);

const SCRIPT_PATH = /^([0-9a-f]{2}(?:-[0-9a-f]{2}){5})\.ipxe$/;

/** What machines on the provisioning network reach without the operator's token: scripts and callbacks. */
export function machineRoutes(boot: BootService): Router {
  const router = Router();

  router.get('/boot/:file', async (req, res) => {
    const match = SCRIPT_PATH.exec(req.params.file.toLowerCase());
    const confirm = req.query.confirm === '1';
    const script = match ? await boot.script(match[1]!.replace(/-/g, ':'), confirm) : null;
    res.type('text/plain').set('cache-control', 'no-store');
    if (script === null) {
      // iPXE moves on to the next boot device: an unknown MAC gets nothing to install.
      res.status(404).send('#!ipxe\n# node-lifecycle: this MAC is not served\nexit\n');
      return;
    }
    res.send(script);
  });

  router.post('/provisioning/v1/callback', async (req, res) => {
    const token = /^Bearer (\S+)$/.exec(req.get('authorization') ?? '')?.[1];
    if (!token) throw new Unauthorized('an installer callback carries its token: Authorization: Bearer <nl.token>');
    const body = parse(callbackSchema, req.body) as InstallerCallback;
    res.json(await boot.callback(token, body));
  });

  return router;
}
