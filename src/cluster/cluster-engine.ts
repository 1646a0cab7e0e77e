import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Connection } from '@temporalio/client';
import { msToTs } from '@temporalio/common/lib/time';
import { ConfigError, type ClusterConfig } from '../config';
import { log } from '../log';
import { assertPortFree } from '../temporal/dev-server';
import { prepareDatabases } from './schema';
import { renderServerConfig, renderUiConfig } from './server-config';
import { startSupervised, type SupervisedProcess } from './supervised-process';

export interface ClusterEngineOptions {
  cluster: ClusterConfig;
  /** This host's files go under DATA_DIR/temporal-cluster: configs, logs, pid files. */
  dataDir: string;
  namespace: string;
  /** The web UI's port on the bind address; 0: no UI. */
  uiPort: number;
  readyTimeoutMs?: number;
}

export interface ClusterEngine {
  address: string;
  uiUrl: string | undefined;
  /** The server process now (it changes when the supervisor restarts it). */
  readonly serverPid: number | undefined;
  /** Rejects when the server or the UI keeps dying. */
  failed: Promise<never>;
  stop(): Promise<void>;
}

/** Closed workflows (finished operations, retired nodes) stay visible this long. */
const RETENTION = '3 days';

/**
 * This host's part of a Temporal cluster on PostgreSQL: the databases made and migrated, the server
 * (frontend, history, matching and worker services in one process) and the web UI as supervised
 * children, the namespace registered. Several hosts doing this against the same databases form one
 * cluster; the first one creates it.
 */
export async function startClusterEngine(options: ClusterEngineOptions): Promise<ClusterEngine> {
  const { cluster } = options;
  for (const [binary, name] of [
    [cluster.serverPath, 'TEMPORAL_SERVER_PATH'],
    [cluster.sqlToolPath, 'TEMPORAL_SQL_TOOL_PATH'],
    ...(options.uiPort ? [[cluster.uiServerPath, 'TEMPORAL_UI_SERVER_PATH']] : []),
  ] as const) {
    try {
      fs.accessSync(binary, fs.constants.X_OK);
    } catch {
      throw new ConfigError(`${name}: no executable at ${binary}; \`npm run cluster\` builds it (scripts/cluster.sh), or set ${name}`);
    }
  }
  const host = cluster.bindIp;
  for (const [name, port] of Object.entries(cluster.ports)) {
    await assertPortFree(host, port, name === 'frontend' ? 'TEMPORAL_PORT' : `TEMPORAL_PORT (+${Object.keys(cluster.ports).indexOf(name)}, ${name})`);
  }
  for (const [name, port] of Object.entries(cluster.membershipPorts)) {
    await assertPortFree(host, port, `TEMPORAL_MEMBERSHIP_PORT (${name} ${port})`);
  }
  if (options.uiPort) await assertPortFree(host, options.uiPort, 'TEMPORAL_UI_PORT');

  await prepareDatabases(cluster);

  const dir = path.join(options.dataDir, 'temporal-cluster');
  await fsp.mkdir(path.join(dir, 'config'), { recursive: true });
  // It holds the database password.
  await fsp.writeFile(path.join(dir, 'config', 'server.yaml'), renderServerConfig(cluster), { mode: 0o600 });
  await fsp.chmod(path.join(dir, 'config', 'server.yaml'), 0o600);

  const children: SupervisedProcess[] = [];
  const stop = async () => {
    // The UI first, then the server: nothing is left talking to a server that is going away.
    for (const child of children.reverse()) await child.stop();
    children.length = 0;
  };
  try {
    const server = await startSupervised({
      name: 'the Temporal server',
      command: cluster.serverPath,
      args: ['--root', dir, '--config', 'config', '--env', 'server', '--allow-no-auth', 'start'],
      logFile: path.join(dir, 'server.log'),
      pidFile: path.join(dir, 'server.pid'),
    });
    children.push(server);
    const connectHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
    const address = `${connectHost}:${cluster.ports.frontend}`;
    await Promise.race([waitUntilServing(address, options.readyTimeoutMs ?? 120_000), server.failed]).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}; see ${path.join(dir, 'server.log')}`);
    });
    await ensureNamespace(address, options.namespace, options.readyTimeoutMs ?? 120_000);

    let uiUrl: string | undefined;
    let ui: SupervisedProcess | undefined;
    if (options.uiPort) {
      await fsp.writeFile(
        path.join(dir, 'config', 'ui.yaml'),
        renderUiConfig({ frontend: address, host, port: options.uiPort, namespace: options.namespace }),
      );
      ui = await startSupervised({
        name: 'the Temporal web UI',
        command: cluster.uiServerPath,
        args: ['--root', dir, '--config', 'config', '--env', 'ui', 'start'],
        logFile: path.join(dir, 'ui.log'),
        pidFile: path.join(dir, 'ui.pid'),
      });
      children.push(ui);
      // Bound to every address: link to the one other hosts reach this one at.
      uiUrl = `http://${connectHost === host ? host : cluster.broadcastAddress}:${options.uiPort}`;
    }
    log.info(`temporal cluster server ${address} (pid ${server.pid}), ${cluster.historyShards} history shards, on ${cluster.database}/${cluster.visibilityDatabase}`);
    return {
      address,
      uiUrl,
      get serverPid() {
        return server.pid;
      },
      failed: ui ? Promise.race([server.failed, ui.failed]) : server.failed,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** The frontend's gRPC health check says SERVING (it does once its history and matching peers answer). */
async function waitUntilServing(address: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError = 'no answer';
  while (Date.now() < deadline) {
    try {
      const connection = await Connection.connect({ address, connectTimeout: 1000 });
      try {
        const { status } = await connection.healthService.check({ service: 'temporal.api.workflowservice.v1.WorkflowService' });
        if (status === 1) return; // SERVING
        lastError = `health status ${status}`;
      } finally {
        await connection.close();
      }
    } catch (err) {
      lastError = (err as Error).message;
    }
    await sleep(300);
  }
  throw new Error(`the Temporal server at ${address} did not serve within ${timeoutMs} ms (${lastError})`);
}

/** Registers the namespace (once per cluster) and waits until this frontend knows it. */
async function ensureNamespace(address: string, namespace: string, timeoutMs: number): Promise<void> {
  const connection = await Connection.connect({ address });
  try {
    try {
      await connection.workflowService.registerNamespace({
        namespace,
        workflowExecutionRetentionPeriod: msToTs(RETENTION),
      });
      log.info(`registered the Temporal namespace ${namespace}`);
    } catch (err) {
      if ((err as { code?: number }).code !== 6) throw err; // ALREADY_EXISTS: registered by an earlier run or another host
    }
    // Frontends learn of new namespaces on their next registry refresh.
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        await connection.workflowService.listWorkflowExecutions({ namespace, pageSize: 1 });
        return;
      } catch (err) {
        if (Date.now() > deadline) throw new Error(`namespace ${namespace} not usable within ${timeoutMs} ms: ${(err as Error).message}`);
        await sleep(300);
      }
    }
  } finally {
    await connection.close();
  }
}
