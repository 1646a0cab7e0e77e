import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startDevServer, type DevServer } from '../src/temporal/dev-server';
import { acceptNode, nodeState, startTestAgent, startTestService, type TestService } from './support/harness';
import { freePort } from './support/ports';
import { runTs, type Proc } from './support/processes';
import { TcpProxy } from './support/tcp-proxy';
import { temporalCliPath } from './support/temporal-cli';
import { createTestDatabase } from './support/test-database';
import { waitFor } from './support/wait-for';

/** What a dependency outage looks like from the API: fast 503s that name what is down, and nothing half done. */

async function timed<T>(work: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const started = Date.now();
  const value = await work();
  return { value, ms: Date.now() - started };
}

describe('the database goes away', () => {
  let ts: TestService;
  let proxy: TcpProxy;
  let drop: () => Promise<void>;

  beforeAll(async () => {
    const database = await createTestDatabase();
    drop = database.drop;
    const url = new URL(database.url);
    proxy = await TcpProxy.start({ host: url.hostname, port: Number(url.port || 5432) });
    url.host = `${proxy.host}:${proxy.port}`;
    ts = await startTestService({ DATABASE_URL: url.toString(), DATABASE_TIMEOUT: '2s' });
  });
  afterAll(async () => {
    await proxy?.up().catch(() => undefined);
    await ts?.stop();
    await proxy?.stop();
    await drop?.();
  });

  test('refused connections answer 503 unavailable, not 500, without the address; all is well once it is back', async () => {
    await proxy.down();
    try {
      for (const res of [await ts.api.get('/api/v1/nodes'), await ts.api.post('/api/v1/commission/nodes', { nodes: ['a.example'] })]) {
        expect(res.status).toBe(503);
        expect(res.body.error.code).toBe('unavailable');
        expect(JSON.stringify(res.body)).not.toContain(String(proxy.port));
      }
      const health = await ts.anonymous.get('/healthz');
      expect(health.status).toBe(503);
      expect(health.body).toMatchObject({ status: 'unavailable', temporal: 'ok' });
      expect(health.body.database).toMatch(/^unavailable/);
      expect(JSON.stringify(health.body)).not.toContain(String(proxy.port));
    } finally {
      await proxy.up();
    }
    await waitFor(() => ts.anonymous.get('/healthz'), (r) => r.status === 200, { what: 'health to recover', timeoutMs: 60_000 });
    expect((await ts.api.get('/api/v1/nodes')).status).toBe(200);
  });

  test('a frozen connection: /healthz answers within about a second saying the database is down; requests get 503 by their deadline', async () => {
    // Both pool connections are taken and frozen: nothing comes back until thaw.
    proxy.freeze();
    try {
      const health = await timed(() => ts.anonymous.get('/healthz'));
      expect(health.value.status).toBe(503);
      expect(health.value.body).toMatchObject({ status: 'unavailable', database: 'unavailable: no answer within 1000 ms', temporal: 'ok' });
      // An upper bound with room for a loaded machine; before, this request took as long as the freeze.
      expect(health.ms).toBeLessThan(10_000);

      const list = await timed(() => ts.api.get('/api/v1/nodes'));
      expect(list.value.status).toBe(503);
      expect(list.value.body.error.code).toBe('unavailable');
      expect(list.ms).toBeLessThan(30_000);
    } finally {
      proxy.thaw();
    }
    await waitFor(() => ts.anonymous.get('/healthz'), (r) => r.status === 200, { what: 'health to recover', timeoutMs: 60_000 });
    expect((await ts.api.get('/api/v1/nodes')).status).toBe(200);
  });
});

describe('Temporal goes away', () => {
  let server: DevServer;
  let ts: TestService;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nl-own-temporal-'));

  beforeAll(async () => {
    server = await startDevServer({ cliPath: temporalCliPath(), dataDir: dir, port: await freePort(), uiPort: 0, headless: true, namespace: 'default' });
    ts = await startTestService({ TEMPORAL_ADDRESS: server.address });
  });
  afterAll(async () => {
    await server?.stop('SIGKILL');
    await ts?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('a killed Temporal server is reported by /healthz within about a second', async () => {
    expect((await ts.anonymous.get('/healthz')).status).toBe(200);

    await server.stop('SIGKILL');

    const health = await timed(() => ts.anonymous.get('/healthz'));
    expect(health.value.status).toBe(503);
    expect(health.value.body).toMatchObject({ status: 'unavailable', database: 'ok' });
    expect(health.value.body.temporal).toMatch(/^unavailable/);
    expect(health.ms).toBeLessThan(10_000);
  });
});

describe('no worker is running', () => {
  let ts: TestService;

  beforeAll(async () => {
    ts = await startTestService({ COMMAND_TIMEOUT: '2s' }, { role: 'api' });
  });
  afterAll(async () => {
    await ts?.stop();
  });

  test('an accept is durable at its 202: queued with no worker running, applied when one starts', async () => {
    const agent = await startTestAgent(ts, ts.hostname('no-worker'));
    try {
      await waitFor(() => nodeState(ts, agent.hostname), (s) => s === 'unmanaged', { what: 'the agent to announce' });

      // No worker: the answer does not wait for one (a bounded wait here is the API's, not a worker's).
      const accepted = await timed(() => acceptNode(ts, agent.hostname, agent.fingerprint));
      expect(accepted.value.status).toBe(202);
      expect(accepted.value.body).toMatchObject({ hostname: agent.hostname, state: 'unmanaged' });
      expect(accepted.ms).toBeLessThan(30_000);
      const taskId = accepted.value.body.task_id;
      expect((await ts.api.get(`/api/v1/tasks/${taskId}`)).body).toMatchObject({ kind: 'accept', hostname: agent.hostname, status: 'queued', started_at: null });
      // A second accept of the same host is refused while the first is queued, naming it.
      const again = await acceptNode(ts, agent.hostname, agent.fingerprint);
      expect(again.status).toBe(409);
      expect(again.body.error.task_id).toBe(taskId);
      expect(await nodeState(ts, agent.hostname)).toBe('unmanaged');

      // A worker comes: the queued accept is applied, under the task the 202 named.
      await ts.addWorker();
      await waitFor(() => nodeState(ts, agent.hostname), (s) => s === 'active', { what: 'the node to be active', timeoutMs: 120_000 });
      const node = (await ts.api.get(`/api/v1/nodes/${agent.hostname}`)).body;
      expect(node.events.filter((e: { event: string }) => e.event === 'accept').map((e: { task_id: string }) => e.task_id)).toEqual([taskId]);
      await waitFor(() => ts.api.get(`/api/v1/tasks/${taskId}`), (r) => r.body.status === 'succeeded', { what: 'the accept task to succeed' });
    } finally {
      await agent.stop();
    }
  }, 300_000);
});

describe('a worker is killed with kill -9 in the middle of a step', () => {
  let ts: TestService;
  let worker: Proc | undefined;

  const startWorker = () => {
    const c = ts.config;
    worker = runTs('src/main.ts', ['--role', 'worker'], {
      DATA_DIR: c.dataDir,
      DATABASE_URL: c.databaseUrl!,
      TEMPORAL_ADDRESS: ts.service.temporalAddress,
      TASK_QUEUE: c.taskQueue,
      AGENT_REQUEST_TIMEOUT: '45s',
      INIT_CHECK_INTERVAL: '500ms',
      INIT_WINDOW: '5m',
    });
    return worker;
  };

  /** Start-up under a loaded machine can take a while (compiling, bundling the workflows): wait for its banner. */
  const workerRunning = (proc: Proc) =>
    waitFor(
      async () => (proc.child.exitCode !== null ? 'exited' : proc.output()),
      (out) => out === 'exited' || out.includes('is running'),
      { what: 'the worker to start', timeoutMs: 120_000, intervalMs: 200 },
    ).then((out) => {
      if (out === 'exited') throw new Error(`worker exited:\n${proc.output()}`);
    });

  beforeAll(async () => {
    ts = await startTestService({ INIT_WINDOW: '5m', AGENT_REQUEST_TIMEOUT: '45s' }, { role: 'api' });
  });
  afterAll(async () => {
    worker?.child.kill('SIGKILL');
    await ts?.stop();
  });

  test('the node carries on within seconds of a new worker, not after a step timeout of minutes', async () => {
    const agent = await startTestAgent(ts, ts.hostname('worker-crash'));
    try {
      // The agent takes 30 s to answer for its facts: the step is surely in flight when the worker dies.
      const slow = path.join(agent.sandbox, 'slow', 'facts');
      fs.mkdirSync(path.dirname(slow), { recursive: true });
      fs.writeFileSync(slow, '30000');
      await workerRunning(startWorker());
      await waitFor(() => nodeState(ts, agent.hostname), (s) => s === 'unmanaged', { what: 'the agent to announce' });
      expect((await acceptNode(ts, agent.hostname, agent.fingerprint)).status).toBe(202);
      await waitFor(
        () => ts.api.get(`/api/v1/nodes/${agent.hostname}`),
        (r) => r.body.initialization?.phase === 'gather_facts',
        { what: 'the facts step to be in flight', timeoutMs: 60_000, intervalMs: 200 },
      );

      worker!.child.kill('SIGKILL');
      await worker!.exited;
      fs.rmSync(slow);
      await workerRunning(startWorker());
      const restarted = Date.now();

      await waitFor(() => nodeState(ts, agent.hostname), (s) => s === 'active', { what: 'the node to be active', timeoutMs: 110_000, intervalMs: 250 });
      // Before, the lost step held the node for its 2-minute start-to-close timeout; now the missing
      // heartbeat gives it away in 10 s. The bound leaves room for a loaded machine.
      expect(Date.now() - restarted).toBeLessThan(90_000);
    } finally {
      await agent.stop();
    }
  }, 240_000);
});
