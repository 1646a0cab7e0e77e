import express from 'express';
import type { Knex } from 'knex';
import type { NodeService } from '../services/node-service';
import type { EnrollmentService } from '../services/enrollment-service';
import type { OperationService } from '../services/operation-service';
import type { NodeWorkflows } from '../temporal/node-workflows';
import { requireOperator } from './auth';
import { errorHandler, notFoundHandler } from './errors-middleware';
import { agentRoutes } from './routes/agent-routes';
import { healthRoutes } from './routes/health-routes';
import { enrollmentRoutes } from './routes/enrollment-routes';
import { nodeRoutes } from './routes/node-routes';
import { operationRoutes } from './routes/operation-routes';
import { taskRoutes } from './routes/task-routes';
import { assertUtf8Body, refuseUnstorableText } from './text-safety';

export interface AppDeps {
  knex: Knex;
  nodes: NodeService;
  operations: OperationService;
  enrollment: EnrollmentService;
  workflows: NodeWorkflows;
  apiToken: string;
  temporalHealthy(deadline: number): Promise<void>;
}

export function createApp(deps: AppDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.use(
    express.json({
      // A bulk request may name 10,000 nodes and more (about 30 bytes a name).
      limit: '8mb',
      // Agent requests are signed over the exact bytes sent.
      verify: (req, _res, buf, encoding) => {
        assertUtf8Body(buf, encoding);
        (req as express.Request & { rawBody?: string }).rawBody = buf.toString('utf8');
      },
    }),
  );
  app.use(refuseUnstorableText);
  app.use(healthRoutes(deps.knex, deps.temporalHealthy));
  app.use('/api/v1', agentRoutes(deps.nodes));
  app.use('/api/v1', requireOperator(deps.apiToken));
  app.use('/api/v1', nodeRoutes(deps.knex, deps.nodes, deps.workflows));
  app.use('/api/v1', operationRoutes(deps.knex, deps.operations));
  app.use('/api/v1', enrollmentRoutes(deps.knex, deps.enrollment));
  app.use('/api/v1', taskRoutes(deps.knex));
  app.use(notFoundHandler);
  app.use(errorHandler);
  return app;
}
