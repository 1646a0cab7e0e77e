import fs from 'node:fs';
import path from 'node:path';
import { temporal } from '@temporalio/proto';
import { Worker } from '@temporalio/worker';
import { workflowBundle } from '../src/temporal/worker';
import { nodeWorkflowId } from '../workflows/definitions';
import { acceptNode, agentsOf, nodeState, startTestService, type TestService } from './support/harness';
import { waitFor } from './support/wait-for';

/**
 * Workflow code must replay the histories of nodes that are already running. Recorded histories come
 * from an earlier version: a change that would break running workflows fails here, not in production.
 * Fresh ones are made by this file itself. UPDATE_REPLAY_FIXTURES=1 records this run's as the fixtures.
 */
const History = temporal.api.history.v1.History;
const FIXTURES = path.join(__dirname, 'fixtures', 'histories');

let ts: TestService;
const agents = agentsOf(() => ts);
beforeAll(async () => {
  ts = await startTestService();
});
afterAll(async () => {
  await agents.stopAll();
  await ts?.stop();
});

const agent = agents.start;
const settle = (hostname: string, state: string) => waitFor(() => nodeState(ts, hostname), (s) => s === state, { what: `${hostname} to be ${state}` });

/** The three paths of the fixtures: straight to active on ready; failed and re-initialized; a failing step that recovers. */
async function makeHistories(): Promise<string[]> {
  const ready = await agent('ready');
  expect((await acceptNode(ts, ready.hostname, ready.fingerprint)).status).toBe(202);

  const down = await agent('down');
  await down.stop();
  expect((await acceptNode(ts, down.hostname, down.fingerprint)).status).toBe(202);

  const flaky = await agent('flaky', { announceIntervalMs: 3_600_000 });
  const failFile = path.join(flaky.sandbox, 'fail', 'monitoring');
  fs.mkdirSync(path.dirname(failFile), { recursive: true });
  fs.writeFileSync(failFile, 'collectd config is read-only');
  expect((await acceptNode(ts, flaky.hostname, flaky.fingerprint)).status).toBe(202);
  await waitFor(() => ts.api.get(`/api/v1/nodes/${flaky.hostname}`), (r) => r.body.last_error !== null, { what: 'the failed attempt' });
  fs.rmSync(failFile);

  await settle(down.hostname, 'failed');
  await down.start();
  expect((await ts.api.post(`/api/v1/nodes/${down.hostname}/actions`, { action: 'reinitialize' })).status).toBe(202);
  for (const a of [ready, down, flaky]) await settle(a.hostname, 'active');
  return ['ready', 'down', 'flaky'];
}

test('recorded and fresh node histories replay against the current workflow code', async () => {
  const labels = await makeHistories();
  const fresh = await Promise.all(
    labels.map(async (label) => ({ label, workflowId: nodeWorkflowId(ts.hostname(label)), history: await ts.temporal.workflow.getHandle(nodeWorkflowId(ts.hostname(label))).fetchHistory() })),
  );
  if (process.env.UPDATE_REPLAY_FIXTURES === '1') {
    fs.mkdirSync(FIXTURES, { recursive: true });
    for (const h of fresh) {
      fs.writeFileSync(path.join(FIXTURES, `${h.label}.json`), JSON.stringify(History.toObject(History.fromObject(h.history as object), { longs: String, enums: String, bytes: String })));
    }
  }
  const recorded = fs.readdirSync(FIXTURES).map((file) => ({
    workflowId: `fixture:${file}`,
    history: History.fromObject(JSON.parse(fs.readFileSync(path.join(FIXTURES, file), 'utf8'))),
  }));
  expect(recorded.map((r) => r.workflowId).sort()).toEqual(['fixture:down.json', 'fixture:flaky.json', 'fixture:ready.json']);

  const results = [];
  for await (const r of Worker.runReplayHistories({ workflowBundle: await workflowBundle() }, [...recorded, ...fresh])) {
    results.push({ workflowId: r.workflowId, error: r.error?.message });
  }
  expect(results.filter((r) => r.error !== undefined)).toEqual([]);
  expect(results).toHaveLength(recorded.length + fresh.length);
});
