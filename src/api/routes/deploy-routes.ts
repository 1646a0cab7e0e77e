import { Router } from 'express';
import { z } from 'zod';
import { imageNameSchema } from '../../images/image-routes';
import type { DeployService } from '../../services/deploy-service';
import { parse } from '../validation';
import { nodeListSchema } from './operation-routes';

export const deploySchema = z.strictObject({ nodes: nodeListSchema, image: imageNameSchema }).meta({ id: 'DeployRequest' });

/** contiv-style multi-node install: every node is queued (per node, under MAX_CONCURRENT_DEPLOYS) or none is. */
export function deployRoutes(deploys: DeployService): Router {
  const router = Router();
  router.post('/deploy/nodes', async (req, res) => {
    const body = parse(deploySchema, req.body);
    const taskId = await deploys.install('deploy', body.nodes, body.image);
    res.status(202).location(`/api/v1/tasks/${taskId}`).json({ task_id: taskId, kind: 'deploy', nodes: body.nodes.length, image: body.image });
  });
  return router;
}
