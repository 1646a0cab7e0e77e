import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { startAgent, type AgentHandle, type AgentOptions } from '../../src/agent/agent';
import { loadConfig, type Config } from '../../src/config';
import { ensureTemporalRuntime } from '../../src/metrics/temporal-runtime';
import { startService, type Role, type RunningService } from '../../src/service';
import { HttpClient } from './http-client';
import { nextLoopbackAddress } from './ports';
import { createTestDatabase, postgresAvailable } from './test-database';
import { waitFor } from './wait-for';

/** The process's Temporal runtime, as the service installs it (with its metrics exporter), quieter. */
function installRuntimeOnce(): Promise<void> {
  return ensureTemporalRuntime({ metricsListen: '127.0.0.1:0', logLevel: 'ERROR' });
}

export interface TestService {
  service: RunningService;
  config: Config;
  /** Authenticated as the operator. */
  api: HttpClient;
  /** No credentials at all. */
  anonymous: HttpClient;
  temporal: Client;
  dataDir: string;
  /** Unique per test file: host names made here never meet another file's workflows. */
  hostname(label: string): string;
  /** Stops the service (API and worker) and starts it again on the same database and task queue. */
  restart(): Promise<void>;
  /** One more worker process-equivalent on the same task queue and database. */
  addWorker(): Promise<RunningService>;
  stop(): Promise<void>;
}

/**
 * The whole service in-process against the run's real Temporal dev server and a fresh database of its
 * own (the PostgreSQL server when present, else embedded PGlite), with short initialization windows.
 */
export async function startTestService(env: Record<string, string> = {}, options: { role?: Role } = {}): Promise<TestService> {
  await installRuntimeOnce();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'nl-service-'));
  // A test that brings its own DATABASE_URL (through a proxy, say) owns that database.
  const database = env.DATABASE_URL === undefined && (await postgresAvailable()) ? await createTestDatabase() : undefined;
  const suffix = Math.random().toString(36).slice(2, 8);
  const config = loadConfig({
    DATA_DIR: dataDir,
    PORT: '0',
    TEMPORAL_ADDRESS: process.env.TEST_TEMPORAL_ADDRESS,
    TASK_QUEUE: `test-${suffix}`,
    INIT_CHECK_INTERVAL: '500ms',
    INIT_WINDOW: '4s',
    AGENT_REQUEST_TIMEOUT: '3s',
    // A starved CI machine can take seconds to open a PostgreSQL connection; tests of the fast 503 set their own.
    DATABASE_TIMEOUT: '20s',
    // Likewise a starved worker can take more than the default 10 s to take a command; tests of the 503 set their own.
    COMMAND_TIMEOUT: '60s',
    ...(database ? { DATABASE_URL: database.url } : {}),
    ...env,
  });
  const role = options.role ?? 'all';
  const service = await startService(config, role);
  const connection = await Connection.connect({ address: service.temporalAddress });
  const extraWorkers: RunningService[] = [];
  const ts: TestService = {
    service,
    config,
    api: new HttpClient(service.apiUrl!, service.apiToken),
    anonymous: new HttpClient(service.apiUrl!),
    temporal: new Client({ connection }),
    dataDir,
    hostname: (label) => `${label}-${suffix}.test`,
    async restart() {
      const port = new URL(ts.service.apiUrl!).port;
      await ts.service.stop();
      // Same port: the agents keep talking to the address they were given.
      ts.service = await startService({ ...config, port: Number(port) }, role);
    },
    async addWorker() {
      const worker = await startService(config, 'worker');
      extraWorkers.push(worker);
      return worker;
    },
    async stop() {
      await connection.close();
      await Promise.all(extraWorkers.map((w) => w.stop()));
      await ts.service.stop();
      await database?.drop();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return ts;
}

export interface TestAgent {
  hostname: string;
  fingerprint: string;
  sandbox: string;
  stateDir: string;
  handle: AgentHandle;
  /** Stops the agent (the node goes down). */
  stop(): Promise<void>;
  /** Starts it again with the same identity, address and port. */
  start(): Promise<void>;
}

/** A real agent in sandbox mode on its own loopback address. */
export async function startTestAgent(
  ts: TestService,
  hostname: string,
  options: Partial<AgentOptions> & { startNow?: boolean } = {},
): Promise<TestAgent> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'nl-agent-'));
  const base: AgentOptions = {
    serverUrl: ts.service.apiUrl!,
    hostname,
    listenHost: nextLoopbackAddress(),
    listenPort: 0,
    stateDir: path.join(root, 'state'),
    sandbox: path.join(root, 'sandbox'),
    announceIntervalMs: 200,
    rebootDurationMs: 500,
    ...options,
  };
  let handle = await startAgent(base);
  const port = Number(new URL(handle.address).port);
  let running = true;
  const agent: TestAgent = {
    hostname,
    fingerprint: handle.fingerprint,
    sandbox: base.sandbox!,
    stateDir: base.stateDir,
    handle,
    async stop() {
      if (running) await handle.stop();
      running = false;
    },
    async start() {
      if (running) return;
      handle = await startAgent({ ...base, listenPort: port });
      agent.handle = handle;
      running = true;
    },
  };
  return agent;
}

export async function nodeState(ts: TestService, hostname: string): Promise<string | undefined> {
  const res = await ts.api.get(`/api/v1/nodes/${hostname}`);
  return res.status === 200 ? res.body.state : undefined;
}

export function acceptNode(ts: TestService, hostname: string, fingerprint: string) {
  return ts.api.post(`/api/v1/unmanaged_nodes/${hostname}/accept`, { hostname, fingerprint });
}

/**
 * A test file's agents: each started, awaited until the server lists it as unmanaged, and all stopped at
 * the end (`stopAll` in afterAll). `ts` is read when an agent starts, after beforeAll has set it.
 */
export function agentsOf(ts: () => TestService) {
  const started: TestAgent[] = [];
  return {
    async start(label: string, options: Parameters<typeof startTestAgent>[2] = {}): Promise<TestAgent> {
      const service = ts();
      const agent = await startTestAgent(service, service.hostname(label), options);
      started.push(agent);
      await waitFor(() => nodeState(service, agent.hostname), (s) => s === 'unmanaged', { what: `${agent.hostname} to announce` });
      return agent;
    },
    stopAll: () => Promise.all(started.map((a) => a.stop())),
  };
}
