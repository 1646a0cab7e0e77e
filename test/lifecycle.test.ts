import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { nodeWorkflowId } from '../workflows/definitions';
import { acceptNode, agentsOf, nodeState, startTestService, type TestService } from './support/harness';
import { temporalCliPath } from './support/temporal-cli';
import { waitFor } from './support/wait-for';

const exec = promisify(execFile);
let ts: TestService;
// A starved worker can take minutes over what takes seconds on an idle machine: deadlines are generous.
jest.setTimeout(300_000);
const agents = agentsOf(() => ts);

beforeAll(async () => {
  ts = await startTestService();
});
afterAll(async () => {
  await agents.stopAll();
  await ts.stop();
});

const agent = agents.start;

function waitForState(hostname: string, state: string, timeoutMs = 120_000) {
  return waitFor(() => nodeState(ts, hostname), (s) => s === state, { timeoutMs, what: `${hostname} to be ${state}` });
}

describe('discover, accept and initialize', () => {
  test('an announced node is listed as unmanaged with the fingerprint its agent prints', async () => {
    const a = await agent('announce');

    const res = await ts.api.get('/api/v1/unmanaged_nodes');

    const listed = res.body.find((n: { hostname: string }) => n.hostname === a.hostname);
    expect(listed).toMatchObject({ fingerprint: a.fingerprint, address: a.handle.address });
    expect((await ts.api.get('/api/v1/nodes')).body.map((n: { hostname: string }) => n.hostname)).not.toContain(a.hostname);
  });

  test('accept answers 202 with a task, and the ready message takes the node to active', async () => {
    const a = await agent('ready');

    const res = await acceptNode(ts, a.hostname, a.fingerprint);

    expect(res.status).toBe(202);
    // Durable at the 202: the state is the one the request found; the workflow applies the accept after.
    expect(res.body).toMatchObject({ hostname: a.hostname, state: 'unmanaged' });
    expect(res.headers.get('location')).toBe(`/api/v1/tasks/${res.body.task_id}`);
    await waitForState(a.hostname, 'active');
    const task = await waitFor(() => ts.api.get(`/api/v1/tasks/${res.body.task_id}`), (r) => r.body.status === 'succeeded');
    expect(task.body).toMatchObject({ kind: 'accept', hostname: a.hostname, error: null });
    const node = (await ts.api.get(`/api/v1/nodes/${a.hostname}`)).body;
    expect(node.last_error).toBeNull();
    expect(node.facts.cpus.count).toBeGreaterThan(0);
    expect(node.facts.memory.total_bytes).toBeGreaterThan(0);
    expect(node.facts.kernel.release).toEqual(expect.any(String));
    expect(node.facts.network_interfaces.map((i: { name: string }) => i.name)).toContain('lo');
    expect(node.events.map((e: { from_state: string; to_state: string }) => `${e.from_state}->${e.to_state}`)).toEqual([
      'null->unmanaged',
      'unmanaged->initializing',
      'initializing->active',
    ]);
    // Initialization really configured the node (inside its sandbox).
    const monitoring = JSON.parse(fs.readFileSync(path.join(a.sandbox, 'etc/nodeagent/monitoring.json'), 'utf8'));
    expect(monitoring.endpoint).toBe(ts.config.monitoringEndpoint);
    for (const service of ts.config.nodeServices) {
      expect(fs.existsSync(path.join(a.sandbox, 'run/nodeagent/services', service))).toBe(true);
    }
  });

  test('the NodeState search attribute follows the node, so the web UI can filter by state', async () => {
    const a = await agent('searchable');
    await acceptNode(ts, a.hostname, a.fingerprint);
    await waitForState(a.hostname, 'active');

    const found = await waitFor(
      async () => {
        const ids: string[] = [];
        for await (const wf of ts.temporal.workflow.list({ query: `NodeState = "active" AND WorkflowId = "${nodeWorkflowId(a.hostname)}"` })) {
          ids.push(wf.workflowId);
        }
        return ids;
      },
      (ids) => ids.length === 1,
      { what: 'the visibility store to index NodeState' },
    );
    expect(found).toEqual([nodeWorkflowId(a.hostname)]);
  });

  test('without a ready message, a periodic check that finds the node reachable initializes it', async () => {
    // Announces once at start and not again for an hour: it never learns it was accepted, so never sends ready.
    const a = await agent('checked', { announceIntervalMs: 3_600_000 });

    await acceptNode(ts, a.hostname, a.fingerprint);

    await waitForState(a.hostname, 'active');
  });

  test('accepting works while the node is down; it becomes active when the agent comes back within the window', async () => {
    const a = await agent('late', { announceIntervalMs: 3_600_000 });
    await a.stop();

    const res = await acceptNode(ts, a.hostname, a.fingerprint);
    expect(res.status).toBe(202);
    await waitFor(
      () => ts.api.get(`/api/v1/nodes/${a.hostname}`),
      (r) => r.body.initialization?.phase === 'waiting_for_node' && r.body.initialization.attempts === 0,
      { what: 'a check to find the node down' },
    );
    await a.start();

    await waitForState(a.hostname, 'active');
  });
});

describe('failure and re-initialization', () => {
  test('a node whose agent stays down ends failed after the window and one retry, with last_error', async () => {
    const a = await agent('down');
    await a.stop();

    const accepted = await acceptNode(ts, a.hostname, a.fingerprint);
    await waitForState(a.hostname, 'failed');

    const node = (await ts.api.get(`/api/v1/nodes/${a.hostname}`)).body;
    expect(node.last_error).toMatch(/^ping: .*ECONNREFUSED/);
    expect(node.allowed_actions).toEqual(['reinitialize']);
    const task = (await ts.api.get(`/api/v1/tasks/${accepted.body.task_id}`)).body;
    expect(task).toMatchObject({ status: 'failed', error: node.last_error });

    // The agent is back: reinitialize by REST brings the node to active.
    await a.start();
    const again = await ts.api.post(`/api/v1/nodes/${a.hostname}/actions`, { action: 'reinitialize' });
    expect(again.status).toBe(202);
    expect(again.body.state).toBe('initializing');
    await waitForState(a.hostname, 'active');
    const reinit = (await ts.api.get(`/api/v1/tasks/${again.body.task_id}`)).body;
    expect(reinit).toMatchObject({ kind: 'reinitialize', status: 'succeeded' });
    expect((await ts.api.get(`/api/v1/nodes/${a.hostname}`)).body.last_error).toBeNull();
  });

  test('a failing step keeps the node initializing with last_error until a later check succeeds', async () => {
    const a = await agent('flaky', { announceIntervalMs: 3_600_000 });
    const failFile = path.join(a.sandbox, 'fail', 'monitoring');
    fs.mkdirSync(path.dirname(failFile), { recursive: true });
    fs.writeFileSync(failFile, 'collectd config is read-only');

    await acceptNode(ts, a.hostname, a.fingerprint);
    const during = await waitFor(
      () => ts.api.get(`/api/v1/nodes/${a.hostname}`),
      (r) => r.body.last_error !== null,
      { what: 'the failed attempt to be recorded' },
    );
    expect(during.body.state).toBe('initializing');
    expect(during.body.last_error).toBe('configure_monitoring: agent ' + a.hostname + ': collectd config is read-only');
    fs.rmSync(failFile);

    await waitForState(a.hostname, 'active');
  });

  test('the reinitialize signal sent with the Temporal CLI re-initializes a failed node', async () => {
    const a = await agent('signal');
    await a.stop();
    await acceptNode(ts, a.hostname, a.fingerprint);
    await waitForState(a.hostname, 'failed');
    await a.start();

    await exec(temporalCliPath(), [
      'workflow', 'signal',
      '--address', ts.service.temporalAddress,
      '--workflow-id', nodeWorkflowId(a.hostname),
      '--name', 'reinitialize',
    ]);

    await waitForState(a.hostname, 'active');
    const events = (await ts.api.get(`/api/v1/nodes/${a.hostname}`)).body.events;
    expect(events.find((e: { event: string }) => e.event === 'reinitialize').cause).toBe('reinitialize signal');
  });

  test('a reinitialize signal outside failed changes nothing', async () => {
    const a = await agent('signal-ignored');
    await acceptNode(ts, a.hostname, a.fingerprint);
    await waitForState(a.hostname, 'active');
    const handle = ts.temporal.workflow.getHandle(nodeWorkflowId(a.hostname));

    await handle.signal('reinitialize');
    // A query sent after a signal is answered once the signal's workflow task has completed.
    const status = await handle.query('status');

    expect(status).toMatchObject({ state: 'active' });
    // That task scheduled nothing: no transition activity follows the signal in the history.
    const events = (await handle.fetchHistory()).events ?? [];
    const signalled = events.findIndex((e) => e.workflowExecutionSignaledEventAttributes?.signalName === 'reinitialize');
    expect(signalled).toBeGreaterThan(0);
    expect(events.slice(signalled).filter((e) => e.activityTaskScheduledEventAttributes)).toEqual([]);
  });
});
