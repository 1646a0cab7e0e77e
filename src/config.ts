import path from 'node:path';
import type { DeploySettings } from '../workflows/definitions';
import { clusterBinaryDefaults } from './cluster/versions';
import { parseDuration } from './duration';
import { decodeSecretsKey } from './secrets/secret-box';

export interface Config {
  host: string;
  port: number;
  dataDir: string;
  /** Unset: an embedded PGlite database under dataDir. */
  databaseUrl?: string;
  /** Unset: the service runs Temporal itself, as ENGINE says. */
  temporalAddress?: string;
  /** ENGINE: the dev server (SQLite, one shard) or a Temporal server on PostgreSQL (`cluster`). */
  engine: 'dev' | 'cluster';
  /** Set when engine is `cluster`. */
  cluster?: ClusterConfig;
  temporalPort: number;
  temporalUiPort: number;
  /** The web UI of a Temporal server the service does not run itself (TEMPORAL_ADDRESS), for links to workflows. */
  temporalUiUrl: string | undefined;
  temporalNamespace: string;
  temporalCliPath: string;
  taskQueue: string;
  apiToken?: string;
  /** Seals driver secrets (IPMI passwords) in the database. Unset: DATA_DIR/secrets.key, made on first start. */
  secretsKey?: Buffer;
  initCheckIntervalMs: number;
  initWindowMs: number;
  agentRequestTimeoutMs: number;
  monitoringEndpoint: string;
  nodeServices: string[];
  maxConcurrentOperations: number;
  operationTimeoutMs: number;
  clusterExtraVars: Record<string, unknown>;
  disappearAfterMs: number;
  powerSyncIntervalMs: number;
  powerSyncParallel: number;
  powerSyncNodeTimeoutMs: number;
  /** How long the API waits for a worker to take a command before it answers 503. */
  commandTimeoutMs: number;
  /** Deadline of every database query and connection attempt. */
  databaseTimeoutMs: number;
  /** Deadline of Temporal calls that need no worker (signals, terminations) and of status queries. */
  temporalTimeoutMs: number;
  /** Unset (no PROVISIONING_URL): no provisioning network; deploys are refused naming the setting. */
  provisioning?: ProvisioningConfig;
  /** Role files (*.json, *.yaml) loaded at start-up; unset: roles come from the API only. */
  rolesDir?: string;
  maxConcurrentDeploys: number;
  deploy: DeploySettings;
  discover: DiscoverConfig;
  /** METRICS_PUBLIC: GET /metrics answers without the operator token. */
  metricsPublic: boolean;
  /** HOST:PORT of the Temporal runtime's Prometheus exporter (port 0: a free one); undefined: none. */
  temporalMetricsListen?: string;
}

/** Adding nodes by address over SSH (POST /api/v1/discover/nodes). */
export interface DiscoverConfig {
  /** The name a joined node is bound to; a node holding another cluster's name refuses to join. */
  clusterName: string;
  /** The URL joined agents call (announce, ready): the API as the nodes reach it; '' until a PORT=0 API listens. */
  serverUrl: string;
  defaultUser: string;
  joinCommand: string;
  connectTimeoutMs: number;
  commandTimeoutMs: number;
  announceTimeoutMs: number;
  agentPort: number;
  /** Tests and demos: a sandbox directory per address ({host} and {port} replaced), sent in the join document. */
  sandbox: string | undefined;
  /** An ssh-agent whose keys are offered beside the service's own. */
  agentSocket: string | undefined;
}

/** The cluster engine: a Temporal server process (all four services) on PostgreSQL, plus its web UI. */
export interface ClusterConfig {
  /** The PostgreSQL server Temporal keeps its two databases on (its path is ignored). */
  databaseUrl: string;
  database: string;
  visibilityDatabase: string;
  /** Fixed when the cluster's databases are first set up; a different value later is refused. */
  historyShards: number;
  /** The address the server's ports bind to, and the one other hosts reach it at. */
  bindIp: string;
  broadcastAddress: string;
  /** gRPC: frontend (TEMPORAL_PORT), history, matching, worker. */
  ports: { frontend: number; history: number; matching: number; worker: number };
  /** Ringpop membership, one per service, in that order (at most 32767: PostgreSQL stores a SMALLINT). */
  membershipPorts: { frontend: number; history: number; matching: number; worker: number };
  /** PostgreSQL connections per store per service in this process (visibility gets half). */
  maxConns: number;
  serverPath: string;
  sqlToolPath: string;
  uiServerPath: string;
}

/** One provisioning network: dnsmasq's per-node files, its address pool, and the machine endpoints. */
export interface ProvisioningConfig {
  /** Where machines on the provisioning network reach the service (iPXE scripts, images, callbacks, agents). */
  url: string;
  listenHost: string;
  listenPort: number;
  /** dnsmasq's dhcp-hostsdir / dhcp-optsdir / hostsdir live under it (worker). */
  dir: string;
  /** dnsmasq's address, probed before any power command. */
  dhcpServer: string;
  /** This host's address on the provisioning network: the probe's relay address. */
  relayAddress: string;
  /** Fixed addresses handed to enrolled MACs. */
  pool: { first: string; last: string };
}


export const PROJECT_ROOT = path.resolve(__dirname, '..');

export class ConfigError extends Error {}

type Env = Record<string, string | undefined>;

function port(env: Env, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0 || value > 65535) {
    throw new ConfigError(`${name}=${raw} is not a TCP port (0-65535)`);
  }
  return value;
}

function duration(env: Env, name: string, fallback: string): number {
  try {
    return parseDuration(env[name] || fallback);
  } catch (err) {
    throw new ConfigError(`${name}: ${(err as Error).message}`);
  }
}

function positiveInt(env: Env, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1) throw new ConfigError(`${name}=${raw} must be a whole number of at least 1`);
  return value;
}

function secretsKey(env: Env): Buffer | undefined {
  const raw = env.SECRETS_KEY;
  if (!raw) return undefined;
  try {
    return decodeSecretsKey(raw.trim());
  } catch (err) {
    // The value itself is never repeated: it is meant to be a secret.
    throw new ConfigError(`SECRETS_KEY ${(err as Error).message}`);
  }
}

function jsonObject(env: Env, name: string): Record<string, unknown> {
  const raw = env[name];
  if (!raw) return {};
  try {
    const value: unknown = JSON.parse(raw);
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value as Record<string, unknown>;
  } catch {
    // reported below
  }
  throw new ConfigError(`${name} must be a JSON object, e.g. {"ntp_server":"10.0.0.1"}`);
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;

function ipv4(env: Env, name: string, fallback?: string): string {
  const value = env[name] || fallback;
  if (!value || !IPV4.test(value)) throw new ConfigError(`${name}=${value ?? ''} must be an IPv4 address`);
  return value;
}

function provisioning(env: Env, dataDir: string): ProvisioningConfig | undefined {
  const raw = env.PROVISIONING_URL;
  if (!raw) return undefined;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(`PROVISIONING_URL=${raw} is not a URL`);
  }
  if (url.protocol !== 'http:' || url.pathname !== '/' || url.search) {
    throw new ConfigError(`PROVISIONING_URL=${raw} must be http://HOST:PORT (iPXE and installers fetch from it)`);
  }
  const listen = env.PROVISIONING_LISTEN || `${url.hostname}:${url.port || '80'}`;
  const match = /^(.+):(\d+)$/.exec(listen);
  if (!match) throw new ConfigError(`PROVISIONING_LISTEN=${listen} must be HOST:PORT`);
  const pool = (env.PROVISIONING_POOL ?? '').split('-');
  if (pool.length !== 2) throw new ConfigError('PROVISIONING_POOL must be FIRST-LAST, e.g. 10.213.0.10-10.213.0.99');
  return {
    url: url.origin,
    listenHost: match[1]!,
    listenPort: port({ PROVISIONING_LISTEN: match[2] }, 'PROVISIONING_LISTEN', 0),
    dir: path.resolve(env.PROVISIONING_DIR || path.join(dataDir, 'dnsmasq')),
    dhcpServer: ipv4(env, 'PROVISIONING_DHCP_SERVER'),
    relayAddress: ipv4(env, 'PROVISIONING_RELAY_ADDRESS', IPV4.test(url.hostname) ? url.hostname : undefined),
    pool: { first: ipv4({ PROVISIONING_POOL: pool[0] }, 'PROVISIONING_POOL'), last: ipv4({ PROVISIONING_POOL: pool[1] }, 'PROVISIONING_POOL') },
  };
}

function discoverConfig(env: Env): DiscoverConfig {
  const host = env.HOST || '127.0.0.1';
  const apiPort = port(env, 'PORT', 8080);
  // PORT=0 (any free port): the URL is known once the API listens (the service fills it in).
  const serverUrl = env.AGENT_SERVER_URL || (apiPort === 0 ? '' : `http://${host.includes(':') ? `[${host}]` : host}:${apiPort}`);
  if (serverUrl && !/^https?:\/\/[^/]+\/?$/.test(serverUrl)) throw new ConfigError(`AGENT_SERVER_URL=${serverUrl} must be http(s)://HOST:PORT`);
  const clusterName = env.CLUSTER_NAME || 'default';
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(clusterName)) throw new ConfigError(`CLUSTER_NAME=${clusterName} must be letters, digits, dots, dashes or underscores`);
  const sandbox = env.DISCOVER_SANDBOX || undefined;
  if (sandbox && !sandbox.startsWith('/')) throw new ConfigError(`DISCOVER_SANDBOX=${sandbox} must be an absolute path`);
  return {
    clusterName,
    serverUrl: serverUrl.replace(/\/$/, ''),
    defaultUser: env.DISCOVER_SSH_USER || 'root',
    joinCommand: env.DISCOVER_JOIN_COMMAND || 'nodeagent join',
    connectTimeoutMs: duration(env, 'DISCOVER_CONNECT_TIMEOUT', '10s'),
    commandTimeoutMs: duration(env, 'DISCOVER_COMMAND_TIMEOUT', '2m'),
    announceTimeoutMs: duration(env, 'DISCOVER_ANNOUNCE_TIMEOUT', '2m'),
    agentPort: port(env, 'DISCOVER_AGENT_PORT', 9443),
    sandbox,
    agentSocket: env.SSH_AUTH_SOCK || undefined,
  };
}

/** Production guidance is hundreds; it cannot change once the cluster exists, so the default is generous. */
export const DEFAULT_HISTORY_SHARDS = 512;

function engine(env: Env): 'dev' | 'cluster' {
  const raw = env.ENGINE || 'dev';
  if (raw !== 'dev' && raw !== 'cluster') throw new ConfigError(`ENGINE=${raw} must be dev or cluster`);
  return raw;
}

function postgresServerUrl(env: Env, name: string, raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(`${name} is not a URL`);
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') throw new ConfigError(`${name} must be a postgres:// URL`);
  url.pathname = '/';
  url.search = '';
  return url.toString();
}

function databaseName(env: Env, name: string, fallback: string): string {
  const value = env[name] || fallback;
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(value)) throw new ConfigError(`${name}=${value} must be a lower-case PostgreSQL name (letters, digits, _)`);
  return value;
}

function clusterConfig(env: Env, frontendPort: number): ClusterConfig {
  // Not named: the server of DATABASE_URL (the inventory's), else a local PostgreSQL.
  const databaseUrl = env.TEMPORAL_DATABASE_URL
    ? postgresServerUrl(env, 'TEMPORAL_DATABASE_URL', env.TEMPORAL_DATABASE_URL)
    : postgresServerUrl(env, 'DATABASE_URL', env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/');
  const database = databaseName(env, 'TEMPORAL_DB', 'temporal');
  const visibilityDatabase = databaseName(env, 'TEMPORAL_VISIBILITY_DB', 'temporal_visibility');
  if (database === visibilityDatabase) throw new ConfigError('TEMPORAL_DB and TEMPORAL_VISIBILITY_DB must differ');
  if (frontendPort === 0 || frontendPort > 65532) throw new ConfigError(`TEMPORAL_PORT=${frontendPort}: the cluster engine uses it and the 3 ports after it (1-65532)`);
  const membership = port(env, 'TEMPORAL_MEMBERSHIP_PORT', 6933);
  if (membership === 0 || membership > 32764) {
    throw new ConfigError(`TEMPORAL_MEMBERSHIP_PORT=${membership}: it and the 3 ports after it must be 1-32767 (Temporal stores them as a SMALLINT)`);
  }
  const bindIp = env.TEMPORAL_BIND_IP || '127.0.0.1';
  const broadcastAddress = env.TEMPORAL_BROADCAST_ADDRESS || bindIp;
  if (broadcastAddress === '0.0.0.0' || broadcastAddress === '::') {
    throw new ConfigError(`TEMPORAL_BIND_IP=${bindIp}: set TEMPORAL_BROADCAST_ADDRESS to the address other hosts reach this one at`);
  }
  const binaries = clusterBinaryDefaults(env);
  return {
    databaseUrl,
    database,
    visibilityDatabase,
    historyShards: positiveInt(env, 'TEMPORAL_HISTORY_SHARDS', DEFAULT_HISTORY_SHARDS),
    bindIp,
    broadcastAddress,
    ports: { frontend: frontendPort, history: frontendPort + 1, matching: frontendPort + 2, worker: frontendPort + 3 },
    membershipPorts: { frontend: membership, history: membership + 1, matching: membership + 2, worker: membership + 3 },
    maxConns: positiveInt(env, 'TEMPORAL_DB_MAX_CONNS', 10),
    serverPath: env.TEMPORAL_SERVER_PATH || binaries.server,
    sqlToolPath: env.TEMPORAL_SQL_TOOL_PATH || binaries.sqlTool,
    uiServerPath: env.TEMPORAL_UI_SERVER_PATH || binaries.uiServer,
  };
}

function flag(env: Env, name: string): boolean {
  const raw = (env[name] ?? '').trim().toLowerCase();
  if (['', '0', 'false', 'no'].includes(raw)) return false;
  if (['1', 'true', 'yes'].includes(raw)) return true;
  throw new ConfigError(`${name}=${env[name]} must be 1 or 0`);
}

function temporalMetricsListen(env: Env): string | undefined {
  const raw = env.TEMPORAL_METRICS_LISTEN || '127.0.0.1:0';
  if (raw === 'off') return undefined;
  const match = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d+)$/.exec(raw);
  if (!match) throw new ConfigError(`TEMPORAL_METRICS_LISTEN=${raw} must be HOST:PORT (port 0: any free port) or off`);
  port({ TEMPORAL_METRICS_LISTEN: match[2] }, 'TEMPORAL_METRICS_LISTEN', 0);
  return raw;
}

function httpUrl(env: Env, name: string): string | undefined {
  const raw = env[name];
  if (!raw) return undefined;
  if (!/^https?:\/\/[^\s/]+(\/[^\s]*)?$/.test(raw)) throw new ConfigError(`${name}=${raw} must be an http(s):// URL`);
  return raw.replace(/\/$/, '');
}

/** Reads the configuration table documented in the README; a bad value stops start-up with its name. */
export function loadConfig(env: Env = process.env): Config {
  const initCheckIntervalMs = duration(env, 'INIT_CHECK_INTERVAL', '30s');
  const initWindowMs = duration(env, 'INIT_WINDOW', '10m');
  if (initCheckIntervalMs > initWindowMs) {
    throw new ConfigError('INIT_CHECK_INTERVAL must not be longer than INIT_WINDOW');
  }
  const dataDir = path.resolve(env.DATA_DIR || path.join(PROJECT_ROOT, '.data'));
  const temporalPort = port(env, 'TEMPORAL_PORT', 7233);
  const selectedEngine = engine(env);
  return {
    host: env.HOST || '127.0.0.1',
    port: port(env, 'PORT', 8080),
    dataDir,
    databaseUrl: env.DATABASE_URL || undefined,
    temporalAddress: env.TEMPORAL_ADDRESS || undefined,
    engine: selectedEngine,
    cluster: selectedEngine === 'cluster' ? clusterConfig(env, temporalPort) : undefined,
    temporalPort,
    temporalUiPort: port(env, 'TEMPORAL_UI_PORT', 8233),
    temporalUiUrl: httpUrl(env, 'TEMPORAL_UI_URL'),
    temporalNamespace: env.TEMPORAL_NAMESPACE || 'default',
    temporalCliPath: env.TEMPORAL_CLI_PATH || 'temporal',
    taskQueue: env.TASK_QUEUE || 'node-lifecycle',
    apiToken: env.API_TOKEN || undefined,
    secretsKey: secretsKey(env),
    initCheckIntervalMs,
    initWindowMs,
    agentRequestTimeoutMs: duration(env, 'AGENT_REQUEST_TIMEOUT', '10s'),
    monitoringEndpoint: env.MONITORING_ENDPOINT || 'udp://127.0.0.1:8125',
    nodeServices: (env.NODE_SERVICES ?? 'collectd,node-exporter')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
    maxConcurrentOperations: positiveInt(env, 'MAX_CONCURRENT_OPERATIONS', 10),
    operationTimeoutMs: duration(env, 'OPERATION_TIMEOUT', '15m'),
    clusterExtraVars: jsonObject(env, 'CLUSTER_EXTRA_VARS'),
    disappearAfterMs: duration(env, 'DISAPPEAR_AFTER', '60s'),
    powerSyncIntervalMs: duration(env, 'POWER_SYNC_INTERVAL', '60s'),
    powerSyncParallel: positiveInt(env, 'POWER_SYNC_PARALLEL', 16),
    powerSyncNodeTimeoutMs: duration(env, 'POWER_SYNC_NODE_TIMEOUT', '15s'),
    commandTimeoutMs: duration(env, 'COMMAND_TIMEOUT', '10s'),
    databaseTimeoutMs: duration(env, 'DATABASE_TIMEOUT', '5s'),
    temporalTimeoutMs: duration(env, 'TEMPORAL_TIMEOUT', '5s'),
    provisioning: provisioning(env, dataDir),
    rolesDir: env.ROLES_DIR || undefined,
    maxConcurrentDeploys: positiveInt(env, 'MAX_CONCURRENT_DEPLOYS', 20),
    deploy: {
      leaseTimeoutMs: duration(env, 'DEPLOY_LEASE_TIMEOUT', '3m'),
      installerTimeoutMs: duration(env, 'DEPLOY_INSTALLER_TIMEOUT', '5m'),
      imageTimeoutMs: duration(env, 'DEPLOY_IMAGE_TIMEOUT', '30m'),
      bootTimeoutMs: duration(env, 'DEPLOY_BOOT_TIMEOUT', '10m'),
      powerCycles: positiveInt(env, 'DEPLOY_POWER_CYCLES', 3),
    },
    discover: discoverConfig(env),
    metricsPublic: flag(env, 'METRICS_PUBLIC'),
    temporalMetricsListen: temporalMetricsListen(env),
  };
}
