import { createHmac } from 'node:crypto';
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
import { startClusterEngine } from './cluster/cluster-engine';
import { startDevServer } from './temporal/dev-server';
import { NodeWorkflows, nodeSignaller } from './temporal/node-workflows';
import { ensureNodeStateAttribute } from './temporal/search-attributes';
import { createWorker } from './temporal/worker';
import { ensureTemporalRuntime } from './metrics/temporal-runtime';
import { BootService } from './provisioning/boot-service';
import { createMachineApp } from './provisioning/machine-app';
import { Provisioner } from './provisioning/provisioner';
import { DeployService } from './services/deploy-service';
import { kickAnnealerOfNoderole } from './deployments/annealer-client';
import { DeploymentService } from './deployments/deployment-service';
import { loadRoleFiles } from './deployments/role-files';
import { DomainError } from './domain/errors';
import { loadOrCreateSshClientKey } from './ssh/client-key';
import { DiscoveryService } from './ssh/discovery-service';
import { installEventSignal } from '../workflows/definitions';
import { inventoryChangedSignal, PROVISIONER_WORKFLOW_ID, provisioner as provisionerWorkflow } from '../workflows/provisioner';

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
  /** Rejects if the Temporal this process runs (cluster engine) keeps dying. */
  temporalFailed?: Promise<never>;
  stop(): Promise<void>;
}

/**
 * Brings up what the role needs, in dependency order, and returns one stop function that takes it
 * down in reverse. `all` also runs Temporal unless TEMPORAL_ADDRESS points elsewhere: the dev server, or
 * with ENGINE=cluster this host's Temporal server on PostgreSQL and its web UI.
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
    let ownUiUrl: string | undefined;
    let temporalFailed: Promise<never> | undefined;
    if (role === 'all' && !config.temporalAddress && config.cluster) {
      if (!config.databaseUrl) {
        // Another host's worker would take this host's nodes' tasks without seeing their rows.
        log.warn('ENGINE=cluster with the embedded database: fine for one host; every host of a multi-host cluster needs the same DATABASE_URL');
      }
      const engine = await startClusterEngine({
        cluster: config.cluster,
        dataDir: config.dataDir,
        namespace: config.temporalNamespace,
        uiPort: config.temporalUiPort,
      });
      stack.push(() => engine.stop());
      temporalAddress = engine.address;
      ownUiUrl = engine.uiUrl;
      temporalFailed = engine.failed;
    } else if (role === 'all' && !config.temporalAddress) {
      const devServer = await startDevServer({
        cliPath: config.temporalCliPath,
        dataDir: config.dataDir,
        port: config.temporalPort,
        uiPort: config.temporalUiPort,
        headless: config.temporalUiPort === 0,
        namespace: config.temporalNamespace,
      });
      stack.push(() => devServer.stop());
      temporalAddress = devServer.address;
      ownUiUrl = devServer.uiUrl;
    }
    // Where operators look at workflows: the UI this process runs, or the one TEMPORAL_UI_URL names.
    const temporalUi = config.temporalUiUrl ?? ownUiUrl;

    const db: Database = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, timeoutMs: config.databaseTimeoutMs });
    stack.push(() => db.close());
    // Roles are data: any process may load the files (the save is one locked, idempotent transaction).
    if (config.rolesDir && role !== 'worker') await loadRoleFiles(db.knex, config.rolesDir);
    // Like the server identity, one key for every process of a deployment: the API seals, the worker opens.
    const secretsKey = await resolveSecretsKey(config.secretsKey, config.dataDir);
    const secretBox = new SecretBox(secretsKey.key);
    await sealStoredSecrets(db.knex, secretBox, secretsKey.source);
    // Every process of a deployment must share this key: the API hands out its fingerprint, the
    // worker presents it to agents.
    const serverIdentity = await loadOrCreateIdentity(path.join(config.dataDir, 'server-identity'), 'node-lifecycle-server');
    // The key new nodes are joined with over SSH (the API shows it, the worker uses it): one per DATA_DIR.
    const sshClientKey = await loadOrCreateSshClientKey(config.dataDir, `node-lifecycle@${config.discover.clusterName}`);

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
      deploy: config.deploy,
    };
    // The installers' one-time tokens: derived from the secrets key, the same in every process.
    const installTokenKey = createHmac('sha256', secretsKey.key).update('node-lifecycle install tokens').digest();
    const signalNodes = nodeSignaller(client.workflow);
    const wakeInstall = (hostname: string) => signalNodes([hostname], installEventSignal);
    const workflows = new NodeWorkflows(client.workflow, config.taskQueue, settings, {
      commandTimeoutMs: config.commandTimeoutMs,
      requestTimeoutMs: config.temporalTimeoutMs,
      abandon: (task) => abandonTask(db.knex, task),
    });

    let workerDone: Promise<void> | undefined;
    if (role !== 'api') {
      let provisioner: Provisioner | undefined;
      if (config.provisioning) {
        provisioner = new Provisioner(db.knex, config.provisioning, wakeInstall);
        await provisioner.start();
        stack.push(() => provisioner!.stop());
      }
      // The worker's runtime, with its Prometheus exporter, before anything native is made (no-op if installed).
      await ensureTemporalRuntime({ metricsListen: config.temporalMetricsListen });
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
          signalNodes,
          // Best effort: the annealer also looks on its own while work is in flight.
          kickAnnealerOf: (noderoleId) =>
            kickAnnealerOfNoderole(db.knex, client.workflow, config.taskQueue, noderoleId).catch((err: unknown) =>
              log.warn(`annealer not woken for noderole ${noderoleId} (it looks again on its own): ${(err as Error).message}`),
            ),
          maxConcurrentDeploys: config.maxConcurrentDeploys,
          installTokenKey,
          provisioner,
          powerSyncParallel: config.powerSyncParallel,
          powerSyncNodeTimeoutMs: config.powerSyncNodeTimeoutMs,
          discover: config.discover,
          sshClientKey,
          serverFingerprint: serverIdentity.fingerprint,
          workflowClient: client.workflow,
          taskQueue: config.taskQueue,
          acceptNode: async (hostname, fingerprint, cause) => {
            try {
              await workflows.accept(hostname, 'unmanaged', fingerprint, cause);
            } catch (err) {
              // Accepted meanwhile (by an operator or a retried check): the next look sees the node's state.
              if (err instanceof DomainError && err.status < 500) log.info(`discovery: accept of ${hostname} refused: ${err.message}`);
              else throw err;
            }
          },
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
      if (provisioner) {
        await client.workflow.start(provisionerWorkflow, {
          workflowId: `${PROVISIONER_WORKFLOW_ID}:${config.taskQueue}`,
          taskQueue: config.taskQueue,
          workflowIdConflictPolicy: 'USE_EXISTING',
        });
      }
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
      const boot = config.provisioning
        ? new BootService({ knex: db.knex, baseUrl: config.provisioning.url, installTokenKey, serverFingerprint: serverIdentity.fingerprint, wake: wakeInstall })
        : undefined;
      const nodes = new NodeService(db.knex, workflows, serverIdentity.fingerprint, boot && ((...args) => boot.announced(...args)));
      const operations = new OperationService(db.knex, client.workflow, config.taskQueue, config.temporalTimeoutMs);
      const inventoryChanged = async () => {
        if (!config.provisioning) return;
        await client.workflow
          .getHandle(`${PROVISIONER_WORKFLOW_ID}:${config.taskQueue}`)
          .signal(inventoryChangedSignal)
          .catch((err: unknown) => log.warn(`provisioner not told of an inventory change (it reconciles on its own): ${(err as Error).message}`));
      };
      const app = createApp({
        knex: db.knex,
        nodes,
        operations,
        enrollment: new EnrollmentService(db.knex, workflows, agents, secretBox, inventoryChanged),
        deploys: new DeployService(db.knex, operations, workflows, config.provisioning !== undefined),
        deployments: new DeploymentService(db.knex, client.workflow, config.taskQueue, config.temporalTimeoutMs, config.provisioning !== undefined),
        discovery: new DiscoveryService(db.knex, operations, config.discover),
        sshClientKey,
        workflows,
        apiToken,
        temporalWorkflowsUrl: temporalUi ? `${temporalUi}/namespaces/${config.temporalNamespace}/workflows` : undefined,
        metrics: { public: config.metricsPublic, caps: { general: config.maxConcurrentOperations, install: config.maxConcurrentDeploys } },
        temporalHealthy: async (deadline) => {
          await connection.withDeadline(deadline, () => connection.workflowService.getSystemInfo({}));
        },
      });
      const server = http.createServer(app);
      await listen(server, config.port, config.host, 'PORT');
      stack.push(() => closeServer(server));
      if (boot && config.provisioning) {
        const machines = http.createServer(createMachineApp({ knex: db.knex, boot, nodes }));
        await listen(machines, config.provisioning.listenPort, config.provisioning.listenHost, 'PROVISIONING_LISTEN');
        stack.push(() => closeServer(machines));
      }
      const { port } = server.address() as AddressInfo;
      const reachableHost = config.host === '0.0.0.0' ? '127.0.0.1' : config.host;
      apiUrl = `http://${reachableHost.includes(':') ? `[${reachableHost}]` : reachableHost}:${port}`;
      // PORT=0 and no AGENT_SERVER_URL: joined agents call this process's API, now that its port is known.
      if (!config.discover.serverUrl) config.discover.serverUrl = apiUrl;
      // nodectl on this machine finds the API here, as it finds the token in api-token.
      await fs.writeFile(path.join(config.dataDir, 'api-url'), `${apiUrl}\n`);
    }

    return {
      apiUrl,
      apiToken,
      apiTokenFile,
      temporalAddress,
      temporalUiUrl: temporalUi,
      database: db.description,
      serverFingerprint: serverIdentity.fingerprint,
      workerDone,
      temporalFailed,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function listen(server: http.Server, port: number, host: string, setting: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        err.code === 'EADDRINUSE'
          ? new ConfigError(`${setting}: port ${port} on ${host} is in use by another process`)
          : err.code === 'EADDRNOTAVAIL'
            ? new ConfigError(`${setting}: ${host} is not an address of this machine`)
            : err,
      ),
    );
    server.listen(port, host, resolve);
  });
}

function closeServer(server: http.Server): Promise<void> {
  return new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
