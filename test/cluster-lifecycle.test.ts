import fs from 'node:fs';
import path from 'node:path';
import { prepareDatabases } from '../src/cluster/schema';
import { ConfigError } from '../src/config';
import { nodeWorkflowId } from '../workflows/definitions';
import { waitForTask } from './support/fleet';
import { acceptNode, agentsOf, nodeState, startTestService, type TestService } from './support/harness';
import { startTestCluster, type TestCluster } from './support/test-cluster';
import { waitFor } from './support/wait-for';

/**
 * The core lifecycle on the cluster engine: a Temporal server on PostgreSQL (several history shards,
 * SQL visibility) instead of the dev server. The same service code; what differs is the engine.
 */
let cluster: TestCluster;
let ts: TestService;
const agents = agentsOf(() => ts);

beforeAll(async () => {
  cluster = await startTestCluster();
  // A window that outlasts a service restart (the restart test accepts a node that is down).
  ts = await startTestService({ TEMPORAL_ADDRESS: cluster.address, INIT_WINDOW: '90s' });
}, 300_000);
afterAll(async () => {
  await agents.stopAll();
  await ts?.stop();
  await cluster?.stop();
}, 120_000);

function waitForState(hostname: string, state: string, timeoutMs = 120_000) {
  return waitFor(() => nodeState(ts, hostname), (s) => s === state, { timeoutMs, what: `${hostname} to be ${state}` });
}

test('announce, accept and initialize take a node to active, with its events and task', async () => {
  const a = await agents.start('c-ready');

  const res = await acceptNode(ts, a.hostname, a.fingerprint);

  expect(res.status).toBe(202);
  await waitForState(a.hostname, 'active');
  const task = await waitForTask(ts, res.body.task_id);
  expect(task.body).toMatchObject({ kind: 'accept', hostname: a.hostname, status: 'succeeded', error: null });
  const node = (await ts.api.get(`/api/v1/nodes/${a.hostname}`)).body;
  expect(node.events.map((e: { from_state: string; to_state: string }) => `${e.from_state}->${e.to_state}`)).toEqual([
    'null->unmanaged',
    'unmanaged->initializing',
    'initializing->active',
  ]);
}, 180_000);

test('the NodeState search attribute is indexed by the SQL visibility store', async () => {
  const a = await agents.start('c-search');
  await acceptNode(ts, a.hostname, a.fingerprint);
  await waitForState(a.hostname, 'active');

  const found = await waitFor(
    async () => {
      const ids: string[] = [];
      for await (const wf of ts.temporal.workflow.list({ query: `NodeState = "active" AND WorkflowId = "${nodeWorkflowId(a.hostname)}"` })) ids.push(wf.workflowId);
      return ids;
    },
    (ids) => ids.length === 1,
    { what: 'visibility to index NodeState', timeoutMs: 120_000 },
  );

  expect(found).toEqual([nodeWorkflowId(a.hostname)]);
}, 180_000);

test('a commission runs the hook on the node and ends commissioned', async () => {
  const a = await agents.start('c-commission');
  await acceptNode(ts, a.hostname, a.fingerprint);
  await waitForState(a.hostname, 'active');
  const hooks = path.join(a.sandbox, 'etc/nodeagent/hooks');
  fs.mkdirSync(hooks, { recursive: true });
  fs.writeFileSync(path.join(hooks, 'commission'), '#!/bin/sh\necho ran > "$NODEAGENT_SANDBOX/commission.ran"\n', { mode: 0o755 });

  const res = await ts.api.post('/api/v1/commission/nodes', { nodes: [a.hostname] });

  expect(res.status).toBe(202);
  expect((await waitForTask(ts, res.body.task_id)).body).toMatchObject({ status: 'succeeded', kind: 'commission' });
  expect(await nodeState(ts, a.hostname)).toBe('commissioned');
  expect(fs.readFileSync(path.join(a.sandbox, 'commission.ran'), 'utf8')).toBe('ran\n');
}, 180_000);

test('after a service restart, a node accepted while down becomes active when it comes back', async () => {
  const a = await agents.start('c-restart', { announceIntervalMs: 3_600_000 });
  await a.stop();
  const res = await acceptNode(ts, a.hostname, a.fingerprint);
  expect(res.status).toBe(202);

  await ts.restart();
  await a.start();

  await waitForState(a.hostname, 'active');
}, 180_000);

test('a history shard count other than the one the cluster was created with is refused, naming both', async () => {
  const attempt = prepareDatabases({ ...cluster.config, historyShards: cluster.config.historyShards * 2 });

  await expect(attempt).rejects.toThrow(ConfigError);
  await expect(attempt).rejects.toThrow(
    `TEMPORAL_HISTORY_SHARDS=${cluster.config.historyShards * 2}, but the cluster in database ${cluster.config.database} was created with ${cluster.config.historyShards} history shards`,
  );
  // The same count again is accepted: every start of every host runs this.
  await expect(prepareDatabases(cluster.config)).resolves.toBeUndefined();
}, 120_000);
