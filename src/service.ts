import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, type Worker } from '@temporalio/worker';
import { AgentClient } from './agent-client';
import { createActivities } from '../activities';
import { createApp } from './api/app';
import { resolveApiToken } from './api-token';
import { ConfigError, type Config } from './config';
import { openDatabase, type Database } from './db/database';
import { loadOrCreateIdentity } from './identity/identity';
import { SecretBox } from './secrets/secret-box';
import { resolveSecretsKey } from './secrets/secrets-key';
import { sealStoredSecrets } from './secrets/seal-stored-secrets';
import { log } from './log';
import { NodeService } from './services/node-service';
import { OperationService } from './services/operation-service';
import { EnrollmentService } from './services/enrollment-service';
import { abandonTask } from './db/tasks-repo';
import { NODE_MONITOR_WORKFLOW_ID, nodeMonitor } from '../workflows/node-monitor';
import { POWER_SYNC_WORKFLOW_ID, powerSync } from '../workflows/power-sync';
import { acquireServiceLock } from './service-lock';
import { startDevServer, type DevServer } from './temporal/dev-server';
import { NodeWorkflows, nodeSignaller } from './temporal/node-workflows';
import { ensureNodeStateAttribute } from './temporal/search-attributes';
import { createWorker } from './temporal/worker';

export type Role = 'all' | 'api' | 'worker';

export interface RunningService {
  apiUrl?: string;
  apiToken: string;
  apiTokenFile?: string;
  temporalAddress: string;
  temporalUiUrl?: string;
  database: string;
  serverFingerprint: string;
  /** Rejects if the worker stops on its own (a fatal error), so the process can exit non-zero. */
  workerDone?: Promise<void>;
  stop(): Promise<void>;
}

/**
 * Brings up what the role needs, in dependency order, and returns one stop function that takes it
 * down in reverse. `all` also runs the Temporal dev server unless TEMPORAL_ADDRESS points elsewhere.
 */
export async function startService(config: Config, role: Role = 'all'): Promise<RunningService> {
  if (role !== 'all' && !config.databaseUrl) {
    throw new ConfigError(`the ${role} role runs beside other processes and the embedded database serves one process: set DATABASE_URL`);
  }
  await fs.mkdir(config.dataDir, { recursive: true });
  // Before anything else touches DATA_DIR: a service still running on it is refused, never broken.
  const lock = acquireServiceLock(config, role);
  const stack: (() => Promise<void>)[] = [async () => lock.release()];
  const stop = async () => {
    while (stack.length > 0) {
      await stack.pop()!().catch((err: unknown) => log.warn(`shutdown: ${(err as Error).message}`));
    }
  };

  try {
    let temporalAddress = config.temporalAddress ?? `127.0.0.1:${config.temporalPort}`;
    let devServer: DevServer | undefined;
    if (role === 'all' && !config.temporalAddress) {
      devServer = await startDevServer({
        cliPath: config.temporalCliPath,
        dataDir: config.dataDir,
        port: config.temporalPort,
        uiPort: config.temporalUiPort,
        headless: config.temporalUiPort === 0,
        namespace: config.temporalNamespace,
      });
      stack.push(() => devServer!.stop());
      temporalAddress = devServer.address;
    }

    const db: Database = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, timeoutMs: config.databaseTimeoutMs });
    stack.push(() => db.close());
    // Like the server identity, one key for every process of a deployment: the API seals, the worker opens.
    const secretsKey = await resolveSecretsKey(config.secretsKey, config.dataDir);
    const secretBox = new SecretBox(secretsKey.key);
    await sealStoredSecrets(db.knex, secretBox, secretsKey.source);
    // Every process of a deployment must share this key: the API hands out its fingerprint, the
    // worker presents it to agents.
    const serverIdentity = await loadOrCreateIdentity(path.join(config.dataDir, 'server-identity'), 'node-lifecycle-server');

    // One agent client per process: the worker's activities and the API's live power reads share it.
    const agents = new AgentClient(serverIdentity, config.agentRequestTimeoutMs);
    const connection = await Connection.connect({ address: temporalAddress });
    stack.push(() => connection.close());
    await ensureNodeStateAttribute(connection, config.temporalNamespace);
    const client = new Client({ connection, namespace: config.temporalNamespace });
    const settings = {
      initCheckIntervalMs: config.initCheckIntervalMs,
      initWindowMs: config.initWindowMs,
      operationTimeoutMs: config.operationTimeoutMs,
    };
    const workflows = new NodeWorkflows(client.workflow, config.taskQueue, settings, {
      commandTimeoutMs: config.commandTimeoutMs,
      requestTimeoutMs: config.temporalTimeoutMs,
      abandon: (task) => abandonTask(db.knex, task),
    });

    let workerDone: Promise<void> | undefined;
    if (role !== 'api') {
      const nativeConnection = await NativeConnection.connect({ address: temporalAddress });
      stack.push(() => nativeConnection.close());
      const worker: Worker = await createWorker({
        connection: nativeConnection,
        namespace: config.temporalNamespace,
        taskQueue: config.taskQueue,
        activities: createActivities({
          knex: db.knex,
          agents,
          secretBox,
          monitoringEndpoint: config.monitoringEndpoint,
          nodeServices: config.nodeServices,
          maxConcurrentOperations: config.maxConcurrentOperations,
          clusterExtraVars: config.clusterExtraVars,
          signalNodes: nodeSignaller(client.workflow),
          powerSyncParallel: config.powerSyncParallel,
          powerSyncNodeTimeoutMs: config.powerSyncNodeTimeoutMs,
        }),
      });
      workerDone = worker.run();
      // The one monitor of the deployment (per task queue); a second worker finds it running.
      await client.workflow.start(nodeMonitor, {
        workflowId: `${NODE_MONITOR_WORKFLOW_ID}:${config.taskQueue}`,
        taskQueue: config.taskQueue,
        args: [{ disappearAfterMs: config.disappearAfterMs }],
        workflowIdConflictPolicy: 'USE_EXISTING',
      });
      await client.workflow.start(powerSync, {
        workflowId: `${POWER_SYNC_WORKFLOW_ID}:${config.taskQueue}`,
        taskQueue: config.taskQueue,
        args: [{ intervalMs: config.powerSyncIntervalMs }],
        workflowIdConflictPolicy: 'USE_EXISTING',
      });
      stack.push(async () => {
        if (worker.getState() === 'RUNNING') worker.shutdown();
        await workerDone!.catch(() => undefined);
      });
    }

    let apiUrl: string | undefined;
    let apiToken = config.apiToken ?? '';
    let apiTokenFile: string | undefined;
    if (role !== 'worker') {
      ({ token: apiToken, file: apiTokenFile } = await resolveApiToken(config.apiToken, config.dataDir));
      const app = createApp({
        knex: db.knex,
        nodes: new NodeService(db.knex, workflows, serverIdentity.fingerprint),
        operations: new OperationService(db.knex, client.workflow, config.taskQueue, config.temporalTimeoutMs),
        enrollment: new EnrollmentService(db.knex, workflows, agents, secretBox),
        workflows,
        apiToken,
        temporalHealthy: async (deadline) => {
          await connection.withDeadline(deadline, () => connection.workflowService.getSystemInfo({}));
        },
      });
      const server = http.createServer(app);
      await new Promise<void>((resolve, reject) => {
        server.once('error', (err: NodeJS.ErrnoException) =>
          reject(err.code === 'EADDRINUSE' ? new ConfigError(`PORT ${config.port} on ${config.host} is in use by another process`) : err),
        );
        server.listen(config.port, config.host, resolve);
      });
      stack.push(
        () =>
          new Promise<void>((resolve) => {
            server.close(() => resolve());
            server.closeAllConnections();
          }),
      );
      const { port } = server.address() as AddressInfo;
      const reachableHost = config.host === '0.0.0.0' ? '127.0.0.1' : config.host;
      apiUrl = `http://${reachableHost.includes(':') ? `[${reachableHost}]` : reachableHost}:${port}`;
      // nodectl on this machine finds the API here, as it finds the token in api-token.
      await fs.writeFile(path.join(config.dataDir, 'api-url'), `${apiUrl}\n`);
    }

    return {
      apiUrl,
      apiToken,
      apiTokenFile,
      temporalAddress,
      temporalUiUrl: devServer?.uiUrl,
      database: db.description,
      serverFingerprint: serverIdentity.fingerprint,
      workerDone,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
