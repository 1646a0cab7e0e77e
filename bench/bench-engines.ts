import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import knexFactory from 'knex';
import { startClusterEngine } from '../src/cluster/cluster-engine';
import { loadConfig } from '../src/config';
import { freePort, freePortBlock } from '../src/dev/free-port';
import { startDevServer, withParentDeathSignal } from '../src/temporal/dev-server';

/** The two Temporal engines as the benchmark runs them: its own, on throwaway storage, stopped after. */

export type EngineName = 'dev' | 'cluster';

export interface BenchEngine {
  name: EngineName;
  address: string;
  serverPid(): number | undefined;
  /** PostgreSQL databases the engine itself uses (none for the dev server's SQLite). */
  databases: string[];
  details: Record<string, unknown>;
  stop(): Promise<void>;
}

const ADMIN_URL = process.env.TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';


export async function startBenchEngine(name: EngineName, root: string): Promise<BenchEngine> {
  const dataDir = path.join(root, `temporal-${name}`);
  fs.mkdirSync(dataDir, { recursive: true });
  if (name === 'dev') {
    const cliPath = process.env.TEMPORAL_CLI_PATH ?? path.join(__dirname, '..', '.tools', 'temporal-v1.5.1', 'temporal');
    const server = await startDevServer({ cliPath, dataDir, port: await freePort(), uiPort: 0, headless: true, namespace: 'default' });
    return { name, address: server.address, serverPid: () => server.pid, databases: [], details: { storage: 'SQLite (one history shard)' }, stop: () => server.stop() };
  }
  const id = randomBytes(5).toString('hex');
  const database = `nl_bench_temporal_${id}`;
  const visibilityDatabase = `nl_bench_temporal_vis_${id}`;
  const serverUrl = new URL(ADMIN_URL);
  serverUrl.pathname = '/';
  // What `npm run cluster` gets unless told otherwise (TEMPORAL_HISTORY_SHARDS, TEMPORAL_DB_MAX_CONNS pass through).
  const config = loadConfig({
    ...process.env,
    ENGINE: 'cluster',
    DATA_DIR: dataDir,
    TEMPORAL_DATABASE_URL: serverUrl.toString(),
    TEMPORAL_DB: database,
    TEMPORAL_VISIBILITY_DB: visibilityDatabase,
    TEMPORAL_PORT: String(await freePortBlock(4, 40000, 60000)),
    TEMPORAL_MEMBERSHIP_PORT: String(await freePortBlock(4, 20000, 32760)),
    TEMPORAL_UI_PORT: '0',
  });
  const drop = async () => {
    const admin = knexFactory({ client: 'pg', connection: ADMIN_URL, pool: { min: 0, max: 1 } });
    try {
      for (const db of [database, visibilityDatabase]) await admin.raw(`drop database if exists ${db} with (force)`);
    } finally {
      await admin.destroy();
    }
  };
  const cluster = config.cluster!;
  try {
    const engine = await startClusterEngine({ cluster, dataDir, namespace: 'default', uiPort: 0 });
    return {
      name,
      address: engine.address,
      serverPid: () => engine.serverPid,
      databases: [database, visibilityDatabase],
      details: { storage: 'PostgreSQL', history_shards: cluster.historyShards, db_max_conns: cluster.maxConns },
      async stop() {
        await engine.stop();
        await drop();
      },
    };
  } catch (err) {
    await drop();
    throw err;
  }
}

export interface ChildService {
  pid: number;
  stop(): Promise<void>;
}

/**
 * One of our processes (`src/main.ts --role api|worker`, or the yardstick's worker) as its own child,
 * so /proc tells its CPU apart; resolves once it prints `readyLine`.
 */
export function startChild(script: string, args: string[], env: Record<string, string>, readyLine: RegExp, logFile: string): Promise<ChildService> {
  const out = fs.openSync(logFile, 'a');
  // Gone with the bench even when it is killed: the kernel signals them when their parent ends.
  const [command, ...commandArgs] = withParentDeathSignal([process.execPath, '--import', 'tsx', script, ...args]);
  const child: ChildProcess = spawn(command!, commandArgs, {
    cwd: path.join(__dirname, '..'),
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', out],
  });
  return new Promise((resolve, reject) => {
    let seen = '';
    const onExit = (code: number | null) => reject(new Error(`${script} ${args.join(' ')} exited (${code}) before it was ready; see ${logFile}`));
    child.once('exit', onExit);
    child.stdout!.on('data', (chunk: Buffer) => {
      fs.appendFileSync(logFile, chunk);
      if (seen === '\u0000') return;
      seen += chunk.toString();
      if (!readyLine.test(seen)) return;
      seen = '\u0000';
      child.off('exit', onExit);
      resolve({
        pid: child.pid!,
        stop: () =>
          new Promise<void>((done) => {
            if (child.exitCode !== null || child.signalCode !== null) return done();
            const kill = setTimeout(() => child.kill('SIGKILL'), 20_000);
            child.once('exit', () => {
              clearTimeout(kill);
              done();
            });
            child.kill('SIGTERM');
          }),
      });
    });
  });
}
