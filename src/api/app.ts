import express from 'express';
import type { Knex } from 'knex';
import type { NodeService } from '../services/node-service';
import type { DeployService } from '../services/deploy-service';
import type { EnrollmentService } from '../services/enrollment-service';
import { imageRoutes } from '../images/image-routes';
import { deployRoutes } from './routes/deploy-routes';
import type { OperationService } from '../services/operation-service';
import type { NodeWorkflows } from '../temporal/node-workflows';
import { requireOperator } from './auth';
import { errorHandler, notFoundHandler } from './errors-middleware';
import { agentRoutes } from './routes/agent-routes';
import { bulkAcceptRoutes } from './routes/bulk-accept-routes';
import { healthRoutes } from './routes/health-routes';
import { enrollmentRoutes } from './routes/enrollment-routes';
import { nodeRoutes } from './routes/node-routes';
import { operationRoutes } from './routes/operation-routes';
import { taskRoutes } from './routes/task-routes';
import { deploymentRoutes } from '../deployments/routes';
import type { DeploymentService } from '../deployments/deployment-service';
import type { SshClientKey } from '../ssh/client-key';
import type { DiscoveryService } from '../ssh/discovery-service';
import { sshRoutes } from '../ssh/ssh-routes';
import { dashboardRoutes } from '../dashboard/routes';
import { metricsMiddleware, metricsRoutes, type MetricsSettings } from '../metrics/http';
import { openApiRoutes } from './openapi/routes';
import { assertUtf8Body, refuseUnstorableText } from './text-safety';

export interface AppDeps {
  knex: Knex;
  nodes: NodeService;
  operations: OperationService;
  enrollment: EnrollmentService;
  deploys: DeployService;
  deployments: DeploymentService;
  discovery: DiscoveryService;
  sshClientKey: SshClientKey;
  workflows: NodeWorkflows;
  apiToken: string;
  temporalHealthy(deadline: number): Promise<void>;
  /** The Temporal web UI's workflow list (…/namespaces/NS/workflows), for the dashboard's links; absent without a UI. */
  temporalWorkflowsUrl?: string;
  /** Absent (an app built for a test of something else): /metrics needs the token and reports no caps. */
  metrics?: MetricsSettings;
}

/** How every listener reads requests: JSON kept as sent (agents sign the bytes), then checked for storable text. */
export function requestParsing(): express.RequestHandler[] {
  return [
    express.json({
      // A bulk request may name 10,000 nodes and more (about 30 bytes a name).
      limit: '8mb',
      // Agent requests are signed over the exact bytes sent.
      verify: (req, _res, buf, encoding) => {
        assertUtf8Body(buf, encoding);
        (req as express.Request & { rawBody?: string }).rawBody = buf.toString('utf8');
      },
    }),
    refuseUnstorableText,
  ];
}

export function createApp(deps: AppDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');
  // Before everything else, so that refused and unknown requests are counted and timed too.
  app.use(metricsMiddleware());
  app.use(requestParsing());
  app.use(healthRoutes(deps.knex, deps.temporalHealthy));
  // Each of these decides its own authentication (see the README for which need the token).
  app.use(metricsRoutes(deps));
  app.use(openApiRoutes());
  app.use(dashboardRoutes(deps));
  app.use('/api/v1', agentRoutes(deps.nodes));
  app.use('/api/v1', requireOperator(deps.apiToken));
  app.use('/api/v1', nodeRoutes(deps.knex, deps.nodes, deps.workflows));
  app.use('/api/v1', operationRoutes(deps.knex, deps.operations));
  app.use('/api/v1', bulkAcceptRoutes(deps.knex, deps.operations));
  app.use('/api/v1', enrollmentRoutes(deps.knex, deps.enrollment, deps.deploys));
  app.use('/api/v1', deployRoutes(deps.deploys));
  app.use('/api/v1', imageRoutes(deps.knex));
  app.use('/api/v1', sshRoutes(deps.knex, deps.discovery, deps.sshClientKey));
  app.use('/api/v1', taskRoutes(deps.knex));
  app.use('/api/v1', deploymentRoutes(deps.knex, deps.deployments));
  app.use(notFoundHandler);
  app.use(errorHandler);
  return app;
}
