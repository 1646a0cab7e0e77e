import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import knexFactory from 'knex';
import { startAgent, type AgentHandle } from '../src/agent/agent';
import { HttpClient } from './support/http-client';
import { freePort, nextLoopbackAddress } from './support/ports';
import { isRunning, runTs, type Proc } from './support/processes';
import { temporalCliPath } from './support/temporal-cli';
import { createTestDatabase } from './support/test-database';
import { clusterHostEnv, temporalDatabases, type TemporalDatabases } from './support/test-cluster';
import { waitFor } from './support/wait-for';

/**
 * Two hosts of one cluster on this machine, each what `npm run cluster` runs (the service with its own
 * Temporal server and worker), on the same PostgreSQL with other ports. One host dies at once (its
 * Temporal server SIGKILLed, then its service); the other carries every node on. Then the surviving
 * host's server is SIGKILLed alone, and its supervisor brings it back.
 */
interface Host {
  env: Record<string, string>;
  dataDir: string;
  proc?: Proc;
  api?: HttpClient;
}

let databases: TemporalDatabases;
let inventory: { url: string; drop(): Promise<void> };
const hosts: Host[] = [];
const agents = new Map<string, { handle?: AgentHandle; fingerprint?: string; base: Parameters<typeof startAgent>[0] }>();
const taskQueue = `cluster-${Math.random().toString(36).slice(2, 8)}`;

const serverPid = (host: Host) => Number(fs.readFileSync(path.join(host.dataDir, 'temporal-cluster', 'server.pid'), 'utf8'));

async function newHost(): Promise<Host> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'nl-host-'));
  const env = {
    ...(await clusterHostEnv(databases)),
    DATA_DIR: dataDir,
    PORT: String(await freePort()),
    DATABASE_URL: inventory.url,
    TASK_QUEUE: taskQueue,
    TEMPORAL_CLI_PATH: temporalCliPath(),
    TEMPORAL_ADDRESS: '',
    INIT_CHECK_INTERVAL: '500ms',
    // Nodes wait out the loss of a host inside their window.
    INIT_WINDOW: '5m',
    AGENT_REQUEST_TIMEOUT: '2s',
  };
  const host: Host = { env, dataDir };
  hosts.push(host);
  return host;
}

async function start(host: Host): Promise<HttpClient> {
  host.proc = runTs('src/main.ts', [], host.env);
  const anonymous = new HttpClient(`http://127.0.0.1:${host.env.PORT}`);
  await waitFor(
    async () => (host.proc!.child.exitCode !== null ? 'exited' : (await anonymous.get('/healthz').catch(() => ({ status: 0 }))).status),
    (s) => s === 200 || s === 'exited',
    { what: 'the host to be healthy', timeoutMs: 180_000, intervalMs: 250 },
  );
  if (host.proc.child.exitCode !== null) throw new Error(`host exited:\n${host.proc.output()}`);
  host.api = anonymous.withToken(fs.readFileSync(path.join(host.dataDir, 'api-token'), 'utf8').trim());
  return host.api;
}

async function startNodeAgent(name: string, serverUrl: string): Promise<void> {
  let entry = agents.get(name);
  if (!entry) {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'nl-cagent-'));
    entry = {
      base: {
        serverUrl,
        hostname: name,
        listenHost: nextLoopbackAddress(),
        listenPort: await freePort(),
        stateDir: path.join(root, 'state'),
        sandbox: path.join(root, 'sandbox'),
        announceIntervalMs: 300,
      },
    };
    agents.set(name, entry);
  }
  entry.handle = await startAgent(entry.base);
  entry.fingerprint = entry.handle.fingerprint;
}

async function stopNodeAgent(name: string): Promise<void> {
  const entry = agents.get(name)!;
  await entry.handle?.stop();
  entry.handle = undefined;
}

const names = () => [...agents.keys()];
/** The state of every node an agent was started for, as an API sees it (undefined: not known). */
const states = async (api: HttpClient): Promise<Record<string, string | undefined>> =>
  Object.fromEntries(
    await Promise.all(
      names().map(async (n) => {
        const res = await api.get(`/api/v1/nodes/${n}`);
        return [n, res.status === 200 ? (res.body.state as string) : undefined] as const;
      }),
    ),
  );

beforeAll(async () => {
  databases = temporalDatabases();
  inventory = await createTestDatabase();
});

afterAll(async () => {
  await Promise.all([...agents.keys()].map(stopNodeAgent));
  for (const host of hosts) {
    if (host.proc && host.proc.child.exitCode === null && host.proc.child.signalCode === null) {
      host.proc.child.kill('SIGTERM');
      const timer = setTimeout(() => host.proc!.child.kill('SIGKILL'), 30_000);
      await host.proc.exited;
      clearTimeout(timer);
    }
    const pidFile = path.join(host.dataDir, 'temporal-cluster', 'server.pid');
    if (fs.existsSync(pidFile) && isRunning(serverPid(host))) process.kill(serverPid(host), 'SIGKILL');
    fs.rmSync(host.dataDir, { recursive: true, force: true });
  }
  await databases?.drop();
  await inventory?.drop();
}, 120_000);

test('a second host joins the cluster; when one host dies no node is lost, and a killed server is restarted', async () => {
  const a = await newHost();
  const apiA = await start(a);
  // One deployment: the second host presents the same server key to agents and opens the same secrets.
  const b = await newHost();
  fs.cpSync(path.join(a.dataDir, 'server-identity'), path.join(b.dataDir, 'server-identity'), { recursive: true });
  fs.copyFileSync(path.join(a.dataDir, 'secrets.key'), path.join(b.dataDir, 'secrets.key'));
  const apiB = await start(b);

  // Both servers are members of one cluster, found through PostgreSQL.
  const temporalDb = knexFactory({ client: 'pg', connection: `${databases.serverUrl}${databases.database}`, pool: { min: 0, max: 1 } });
  try {
    const ports = (await temporalDb('cluster_membership').distinct('rpc_port')).map((r: { rpc_port: number }) => r.rpc_port);
    expect(ports).toEqual(expect.arrayContaining([Number(a.env.TEMPORAL_MEMBERSHIP_PORT), Number(b.env.TEMPORAL_MEMBERSHIP_PORT)]));
  } finally {
    await temporalDb.destroy();
  }

  // Six nodes announce; three are accepted and become active, three are accepted while down and wait.
  const first = ['up1', 'up2', 'up3', 'down1', 'down2', 'down3'].map((n) => `${n}-${taskQueue}.test`);
  for (const name of first) await startNodeAgent(name, a.api!.baseUrl);
  await waitFor(() => states(apiB), (s) => first.every((n) => s[n] === 'unmanaged'), { what: 'six nodes to announce', timeoutMs: 120_000 });
  const down = first.filter((n) => n.startsWith('down'));
  for (const name of down) await stopNodeAgent(name);
  for (const name of first) {
    const res = await apiB.post(`/api/v1/unmanaged_nodes/${name}/accept`, { hostname: name, fingerprint: agents.get(name)!.fingerprint });
    expect(res.status).toBe(202);
  }
  await waitFor(() => states(apiA), (s) => first.every((n) => s[n] === (down.includes(n) ? 'initializing' : 'active')), {
    what: 'the three live nodes to be active',
    timeoutMs: 180_000,
  });

  // Host B dies at once: its Temporal server first (kill -9, so no clean hand-over), then its service.
  const deadServer = serverPid(b);
  process.kill(deadServer, 'SIGKILL');
  b.proc!.child.kill('SIGKILL');
  await b.proc!.exited;

  // The waiting nodes come back and two new ones are accepted: host A alone takes every node on.
  for (const name of down) await startNodeAgent(name, a.api!.baseUrl);
  const late = ['late1', 'late2'].map((n) => `${n}-${taskQueue}.test`);
  for (const name of late) await startNodeAgent(name, a.api!.baseUrl);
  await waitFor(() => states(apiA), (s) => late.every((n) => s[n] === 'unmanaged'), { what: 'two more nodes to announce', timeoutMs: 120_000 });
  for (const name of late) {
    const res = await apiA.post(`/api/v1/unmanaged_nodes/${name}/accept`, { hostname: name, fingerprint: agents.get(name)!.fingerprint });
    expect(res.status).toBe(202);
  }
  const all = [...first, ...late];
  const settled = await waitFor(() => states(apiA), (s) => all.every((n) => s[n] === 'active'), {
    what: 'every node to be active on the surviving host',
    timeoutMs: 240_000,
    intervalMs: 500,
  });
  expect(Object.values(settled)).toEqual(all.map(() => 'active'));
  expect(isRunning(deadServer)).toBe(false);

  // Host A's server is killed alone: its supervisor says so and starts it again; the host serves on.
  const killed = serverPid(a);
  process.kill(killed, 'SIGKILL');
  await waitFor(async () => (fs.existsSync(path.join(a.dataDir, 'temporal-cluster', 'server.pid')) ? serverPid(a) : killed), (pid) => pid !== killed && isRunning(pid), {
    what: 'the supervisor to restart the server',
    timeoutMs: 60_000,
  });
  expect(a.proc!.output()).toMatch(/the Temporal server \(pid \d+\) exited unexpectedly \(SIGKILL\); restarting it/);
  const res = await apiA.post('/api/v1/commission/nodes', { nodes: [first[0]] });
  expect(res.status).toBe(202);
  await waitFor(() => states(apiA), (s) => s[first[0]!] === 'commissioned', { what: 'a commission after the restart', timeoutMs: 180_000 });

  // A clean stop takes the server with it.
  await Promise.all([...agents.keys()].map(stopNodeAgent));
  const last = serverPid(a);
  a.proc!.child.kill('SIGTERM');
  expect(await a.proc!.exited).toBe(0);
  expect(isRunning(last)).toBe(false);
}, 900_000);
