import path from 'node:path';
import { parseDuration } from './duration';
import { decodeSecretsKey } from './secrets/secret-box';

export interface Config {
  host: string;
  port: number;
  dataDir: string;
  /** Unset: an embedded PGlite database under dataDir. */
  databaseUrl?: string;
  /** Unset: the service spawns the Temporal dev server itself. */
  temporalAddress?: string;
  temporalPort: number;
  temporalUiPort: number;
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

/** Reads the configuration table documented in the README; a bad value stops start-up with its name. */
export function loadConfig(env: Env = process.env): Config {
  const initCheckIntervalMs = duration(env, 'INIT_CHECK_INTERVAL', '30s');
  const initWindowMs = duration(env, 'INIT_WINDOW', '10m');
  if (initCheckIntervalMs > initWindowMs) {
    throw new ConfigError('INIT_CHECK_INTERVAL must not be longer than INIT_WINDOW');
  }
  return {
    host: env.HOST || '127.0.0.1',
    port: port(env, 'PORT', 8080),
    dataDir: path.resolve(env.DATA_DIR || path.join(PROJECT_ROOT, '.data')),
    databaseUrl: env.DATABASE_URL || undefined,
    temporalAddress: env.TEMPORAL_ADDRESS || undefined,
    temporalPort: port(env, 'TEMPORAL_PORT', 7233),
    temporalUiPort: port(env, 'TEMPORAL_UI_PORT', 8233),
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
  };
}
