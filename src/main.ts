import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from './config';
import { log } from './log';
import { startService, type Role, type RunningService } from './service';

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { role: { type: 'string', default: 'all' } } });
  const role = values.role as Role;
  if (!['all', 'api', 'worker'].includes(role)) throw new ConfigError(`--role must be all, api or worker, not ${role}`);
  const config = loadConfig();

  const service = await startService(config, role);
  const lines = [
    `node-lifecycle (${role}) is running`,
    service.apiUrl && `  REST API      ${service.apiUrl}/api/v1   (health: ${service.apiUrl}/healthz)`,
    service.apiUrl && `  API token     ${tokenWhereabouts(service)}`,
    service.apiUrl && `  Dashboard     ${service.apiUrl}/dashboard/   (log in with the API token)`,
    service.apiUrl && `  API reference ${service.apiUrl}/api/docs/   (document: ${service.apiUrl}/api/v1/openapi.json)`,
    service.apiUrl && `  Metrics       ${service.apiUrl}/metrics${config.metricsPublic ? '' : '   (with the API token)'}`,
    `  Temporal      ${service.temporalAddress}   namespace ${config.temporalNamespace}, task queue ${config.taskQueue}`,
    config.cluster &&
      role === 'all' &&
      !config.temporalAddress &&
      `  Cluster       ${config.cluster.historyShards} history shards on ${config.cluster.database}/${config.cluster.visibilityDatabase} at ${new URL(config.cluster.databaseUrl).host}; membership ${config.cluster.broadcastAddress}:${config.cluster.membershipPorts.frontend}-${config.cluster.membershipPorts.worker}`,
    service.temporalUiUrl && `  Temporal UI   ${service.temporalUiUrl}/namespaces/${config.temporalNamespace}/workflows`,
    `  Database      ${service.database}`,
    `  Server key    ${service.serverFingerprint}`,
    config.provisioning &&
      `  Provisioning  machines reach ${config.provisioning.url} (listening on ${config.provisioning.listenHost}:${config.provisioning.listenPort}); dnsmasq files in ${config.provisioning.dir}`,
  ];
  console.log(lines.filter(Boolean).join('\n'));

  let stopping = false;
  const shutdown = async (reason: string, code: number) => {
    if (stopping) return;
    stopping = true;
    log.info(`shutting down (${reason})`);
    await service.stop();
    process.exit(code);
  };
  process.on('SIGINT', () => void shutdown('SIGINT', 0));
  process.on('SIGTERM', () => void shutdown('SIGTERM', 0));
  service.temporalFailed?.catch((err: unknown) => {
    log.error(`temporal stopped: ${(err as Error).message}`);
    void shutdown('temporal failure', 1);
  });
  service.workerDone?.catch((err: unknown) => {
    log.error(`worker stopped: ${(err as Error).message}`);
    void shutdown('worker failure', 1);
  });
}

/** Where the token is, never the token: a start-up banner ends up in terminals, logs and screenshots. */
function tokenWhereabouts(service: RunningService): string {
  if (!service.apiTokenFile) return 'from API_TOKEN (not shown)';
  return `in ${service.apiTokenFile}   (begins ${service.apiToken.slice(0, 4)}…)`;
}

main().catch((err: unknown) => {
  console.error(err instanceof ConfigError ? `configuration: ${err.message}` : `start-up failed: ${(err as Error).message}`);
  process.exit(1);
});
