import express from 'express';
import type { Knex } from 'knex';
import { requestParsing } from '../api/app';
import { errorHandler, notFoundHandler } from '../api/errors-middleware';
import { agentRoutes } from '../api/routes/agent-routes';
import { imageFileRoutes } from '../images/image-routes';
import type { NodeService } from '../services/node-service';
import type { BootService } from './boot-service';
import { machineRoutes } from './machine-routes';

/**
 * The listener machines on the provisioning network reach (PROVISIONING_LISTEN): iPXE scripts, image
 * files, installer callbacks, and the agents' own signed requests. The operator API is not on it.
 */
export function createMachineApp(deps: { knex: Knex; boot: BootService; nodes: NodeService }): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.use(requestParsing());
  app.use(machineRoutes(deps.boot));
  app.use(imageFileRoutes(deps.knex));
  app.use('/api/v1', agentRoutes(deps.nodes));
  app.use(notFoundHandler);
  app.use(errorHandler);
  return app;
}
