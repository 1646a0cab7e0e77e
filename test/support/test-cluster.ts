import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import knexFactory from 'knex';
import { startClusterEngine, type ClusterEngine } from '../../src/cluster/cluster-engine';
import { loadConfig, type ClusterConfig } from '../../src/config';
import { freePortBlock } from '../../src/dev/free-port';

const ADMIN_URL = process.env.TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';


/** The environment of one cluster host: its own ports, the test's two Temporal databases. */
export async function clusterHostEnv(databases: TemporalDatabases): Promise<Record<string, string>> {
  return {
    ENGINE: 'cluster',
    TEMPORAL_DATABASE_URL: databases.serverUrl,
    TEMPORAL_DB: databases.database,
    TEMPORAL_VISIBILITY_DB: databases.visibilityDatabase,
    // Few shards and connections: the test machine's PostgreSQL also serves every other test file.
    TEMPORAL_HISTORY_SHARDS: '8',
    TEMPORAL_DB_MAX_CONNS: '3',
    TEMPORAL_PORT: String(await freePortBlock(4, 40000, 60000)),
    TEMPORAL_MEMBERSHIP_PORT: String(await freePortBlock(4, 20000, 32760)),
    TEMPORAL_UI_PORT: '0',
  };
}

export interface TemporalDatabases {
  serverUrl: string;
  database: string;
  visibilityDatabase: string;
  drop(): Promise<void>;
}

/** Names for a throwaway cluster's two databases (the engine creates them), dropped by `drop`. */
export function temporalDatabases(): TemporalDatabases {
  const id = randomBytes(5).toString('hex');
  const database = `nl_temporal_${id}`;
  const visibilityDatabase = `nl_temporal_vis_${id}`;
  const server = new URL(ADMIN_URL);
  server.pathname = '/';
  return {
    serverUrl: server.toString(),
    database,
    visibilityDatabase,
    async drop() {
      const admin = knexFactory({ client: 'pg', connection: ADMIN_URL, pool: { min: 0, max: 1 } });
      try {
        for (const name of [database, visibilityDatabase]) await admin.raw(`drop database if exists ${name} with (force)`);
      } finally {
        await admin.destroy();
      }
    },
  };
}

export interface TestCluster {
  address: string;
  config: ClusterConfig;
  engine: ClusterEngine;
  databases: TemporalDatabases;
  stop(): Promise<void>;
}

/** One cluster host in this process, on throwaway databases: a test file's Temporal on the cluster engine. */
export async function startTestCluster(): Promise<TestCluster> {
  const databases = temporalDatabases();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'nl-cluster-'));
  const config = loadConfig({ ...process.env, ...(await clusterHostEnv(databases)), DATA_DIR: dataDir });
  let engine: ClusterEngine;
  try {
    engine = await startClusterEngine({ cluster: config.cluster!, dataDir, namespace: 'default', uiPort: 0 });
  } catch (err) {
    await databases.drop();
    fs.rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
  return {
    address: engine.address,
    config: config.cluster!,
    engine,
    databases,
    async stop() {
      await engine.stop();
      await databases.drop();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
