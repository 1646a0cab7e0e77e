import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import pg from 'pg';
import { ConfigError, type ClusterConfig } from '../config';
import { log } from '../log';

const run = promisify(execFile);

/**
 * Makes the cluster's two databases exist at the schema this server version needs: creates them when
 * missing, then lets Temporal's own schema tool set up and migrate each (both steps skip what is done,
 * so every start runs them and a re-run is harmless). Then checks that the history shard count asked
 * for is the one the cluster was created with.
 */
export async function prepareDatabases(cluster: ClusterConfig): Promise<void> {
  const server = new URL(cluster.databaseUrl);
  await createIfMissing(server, [cluster.database, cluster.visibilityDatabase]);
  await migrate(cluster, cluster.database, 'postgresql/v12/temporal');
  await migrate(cluster, cluster.visibilityDatabase, 'postgresql/v12/visibility');
  const created = await createdShardCount(server, cluster.database);
  if (created !== undefined && created !== cluster.historyShards) {
    // The server would quietly use the stored count; say so instead, before anything runs.
    throw new ConfigError(
      `TEMPORAL_HISTORY_SHARDS=${cluster.historyShards}, but the cluster in database ${cluster.database} was created with ${created} history shards ` +
        `and that number can never change: set TEMPORAL_HISTORY_SHARDS=${created} (every host of a cluster uses the same), or point TEMPORAL_DB/TEMPORAL_VISIBILITY_DB at new databases`,
    );
  }
}

function client(server: URL, database: string): pg.Client {
  const url = new URL(server);
  url.pathname = `/${database}`;
  return new pg.Client({ connectionString: url.toString(), connectionTimeoutMillis: 10_000 });
}

async function createIfMissing(server: URL, databases: string[]): Promise<void> {
  const admin = client(server, 'postgres');
  try {
    await admin.connect();
  } catch (err) {
    throw new ConfigError(`cannot reach the PostgreSQL server for Temporal (TEMPORAL_DATABASE_URL, else DATABASE_URL's server): ${(err as Error).message}`);
  }
  try {
    for (const name of databases) {
      const { rowCount } = await admin.query('select 1 from pg_database where datname = $1', [name]);
      if (rowCount) continue;
      try {
        // The name passed config's check (lower-case letters, digits, _), so it needs no quoting beyond this.
        await admin.query(`create database "${name}"`);
        log.info(`created the Temporal database ${name}`);
      } catch (err) {
        // Another host creating the same cluster at the same moment.
        if ((err as { code?: string }).code !== '42P04') throw err;
      }
    }
  } finally {
    await admin.end();
  }
}

async function migrate(cluster: ClusterConfig, database: string, schemaName: string): Promise<void> {
  const server = new URL(cluster.databaseUrl);
  const env = {
    ...process.env,
    SQL_PLUGIN: 'postgres12',
    SQL_HOST: server.hostname,
    SQL_PORT: server.port || '5432',
    SQL_USER: decodeURIComponent(server.username) || 'postgres',
    SQL_PASSWORD: decodeURIComponent(server.password),
    SQL_DATABASE: database,
  };
  for (const args of [
    ['setup-schema', '-v', '0.0'],
    ['update-schema', '--schema-name', schemaName],
  ]) {
    try {
      await run(cluster.sqlToolPath, args, { env, timeout: 300_000 });
    } catch (err) {
      const { stderr, stdout, message } = err as { stderr?: string; stdout?: string; message: string };
      throw new Error(`temporal-sql-tool ${args[0]} on ${database} failed: ${(stderr || stdout || message).trim().split('\n').slice(-3).join(' | ')}`);
    }
  }
}

/** The shard count stored when the cluster was first started; undefined before that. */
async function createdShardCount(server: URL, database: string): Promise<number | undefined> {
  const db = client(server, database);
  await db.connect();
  try {
    const { rows } = await db.query<{ data: Buffer; data_encoding: string }>(
      'select data, data_encoding from cluster_metadata_info where metadata_partition = 0 limit 1',
    );
    const row = rows[0];
    if (!row) return undefined;
    if (row.data_encoding !== 'Proto3') return undefined;
    return protoVarintField(row.data, 2);
  } finally {
    await db.end();
  }
}

/**
 * Reads one varint field of a protobuf message (temporal.server.api.persistence.v1.ClusterMetadata:
 * history_shard_count = 2), skipping the others; the server's internal protos are not published for Node.
 */
export function protoVarintField(buf: Buffer, field: number): number | undefined {
  let i = 0;
  const varint = () => {
    let value = 0;
    let shift = 0;
    for (;;) {
      if (i >= buf.length) throw new Error('truncated varint');
      const byte = buf[i++]!;
      value += (byte & 0x7f) * 2 ** shift;
      if (byte < 0x80) return value;
      shift += 7;
    }
  };
  while (i < buf.length) {
    const key = varint();
    const wire = key % 8;
    const number = Math.floor(key / 8);
    if (wire === 0) {
      const value = varint();
      if (number === field) return value;
    } else if (wire === 2) {
      const length = varint(); // read before adding: `i += varint()` would add to the old i
      i += length;
    } else if (wire === 1) {
      i += 8;
    } else if (wire === 5) {
      i += 4;
    } else {
      return undefined;
    }
  }
  return undefined;
}
