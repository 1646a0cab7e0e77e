import fs from 'node:fs/promises';
import path from 'node:path';
import knexFactory, { type Knex } from 'knex';
import { applyMigrations } from './migrations';

export interface Database {
  knex: Knex;
  /** Where the data lives, for the start-up banner (no credentials). */
  description: string;
  close(): Promise<void>;
}

/**
 * With a URL, that PostgreSQL server. Without one, PGlite (PostgreSQL compiled to WebAssembly) keeps its
 * files under dataDir and is served on a loopback port, so the same pg driver and SQL serve both.
 */
export async function openDatabase(options: { databaseUrl?: string; dataDir: string; timeoutMs?: number }): Promise<Database> {
  const timeoutMs = options.timeoutMs ?? 5_000;
  const db = options.databaseUrl ? await openPostgres(options.databaseUrl, timeoutMs) : await openEmbedded(options.dataDir, timeoutMs);
  try {
    await applyMigrations(db.knex);
  } catch (err) {
    await db.close();
    throw err;
  }
  return db;
}

/**
 * Every query has a deadline: a frozen connection or a server that stopped answering fails the request
 * (503) within timeoutMs, instead of holding it, and its pool slot, for as long as the freeze lasts.
 */
function deadlines(timeoutMs: number) {
  return { connectionTimeoutMillis: timeoutMs, query_timeout: timeoutMs };
}

async function openPostgres(url: string, timeoutMs: number): Promise<Database> {
  const knex = knexFactory({
    client: 'pg',
    // statement_timeout also stops the server's side of a statement the client gave up on.
    connection: { connectionString: url, ...deadlines(timeoutMs), statement_timeout: timeoutMs },
    pool: { min: 0, max: 10 },
    acquireConnectionTimeout: timeoutMs,
  });
  const safe = new URL(url);
  safe.password = '';
  return { knex, description: `PostgreSQL ${safe.host}${safe.pathname}`, close: () => knex.destroy() };
}

async function openEmbedded(dataDir: string, timeoutMs: number): Promise<Database> {
  // Loaded lazily: PGlite's WebAssembly image is only paid for when it is used.
  const { PGlite } = await import('@electric-sql/pglite');
  const { PGLiteSocketServer } = await import('@electric-sql/pglite-socket');
  const dir = path.join(dataDir, 'pgdata');
  await fs.mkdir(dir, { recursive: true });
  const pglite = await PGlite.create(dir);
  const server = new PGLiteSocketServer({ db: pglite, host: '127.0.0.1', port: 0, maxConnections: 1 });
  await server.start();
  const port = Number(server.getServerConn().split(':').pop());
  // PGlite is a single session: one pooled connection keeps transactions from interleaving.
  const knex = knexFactory({
    client: 'pg',
    connection: { host: '127.0.0.1', port, user: 'postgres', database: 'postgres', ...deadlines(timeoutMs) },
    pool: { min: 0, max: 1 },
    acquireConnectionTimeout: timeoutMs,
  });
  return {
    knex,
    description: `embedded PGlite ${dir}`,
    async close() {
      await knex.destroy();
      await server.stop();
      await pglite.close();
    },
  };
}
