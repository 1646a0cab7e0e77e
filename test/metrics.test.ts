import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { NODE_STATES } from '../src/domain/states';
import { FinishedSince } from '../src/metrics/durations';
import type { Fleet } from '../src/fleet/simulator';
import { startService } from '../src/service';
import { installHook, startActiveFleet, waitForTask } from './support/fleet';
import { acceptNode, agentsOf, startTestService, type TestService } from './support/harness';
import { HttpClient } from './support/http-client';
import { waitFor } from './support/wait-for';

const CAP = 7;
let ts: TestService;
// Each test waits on several scrapes with generous deadlines (see `until`).
jest.setTimeout(400_000);

let fleet: Fleet;
let nodes: string[];
const agents = agentsOf(() => ts);

beforeAll(async () => {
  ts = await startTestService({ MAX_CONCURRENT_OPERATIONS: String(CAP), DISAPPEAR_AFTER: '5s' });
  fleet = await startActiveFleet(ts, 3, 'metrics');
  nodes = fleet.hostnames;
}, 300_000);
afterAll(async () => {
  await agents.stopAll();
  await fleet?.stop();
  await ts?.stop();
});

/** One scrape, parsed: `value(name, labels)` is the sample with exactly those labels. */
interface Scrape {
  text: string;
  value(name: string, labels?: Record<string, string>): number | undefined;
}

function parse(text: string): Scrape {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)/.exec(line);
    if (!match) continue;
    const labels = [...(match[2] ?? '').matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g)].map(([, k, v]) => `${k}=${v}`).sort();
    samples.set(`${match[1]}{${labels.join(',')}}`, Number(match[3]));
  }
  return {
    text,
    value: (name, labels = {}) =>
      samples.get(
        `${name}{${Object.entries(labels)
          .map(([k, v]) => `${k}=${v}`)
          .sort()
          .join(',')}}`,
      ),
  };
}

async function scrape(client: HttpClient = ts.api): Promise<Scrape> {
  const res = await client.get('/metrics');
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}: ${JSON.stringify(res.body)}`);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return parse(res.body as string);
}

// Generous: with the CPU shared many ways, a node's operation can take more than a minute to start.
const until = (what: string, done: (m: Scrape) => boolean, timeoutMs = 150_000) => waitFor(() => scrape(), done, { what, timeoutMs, intervalMs: 250 });

test('nodes by state (every state listed, at 0 too), reachable, unreachable and with a power fault', async () => {
  const m = await until('3 active, reachable nodes', (s) => s.value('node_lifecycle_nodes', { state: 'active' }) === 3 && s.value('node_lifecycle_nodes_reachable') === 3);
  for (const state of NODE_STATES.filter((s) => s !== 'active')) expect([state, m.value('node_lifecycle_nodes', { state })]).toEqual([state, 0]);
  expect(m.value('node_lifecycle_nodes_unreachable')).toBe(0);
  expect(m.value('node_lifecycle_nodes_power_fault')).toBe(0);

  // The third node's agent goes silent: after DISAPPEAR_AFTER the monitor marks it unreachable.
  await fleet.disappear(nodes[2]!);
  const after = await until('one unreachable node, two reachable', (s) => s.value('node_lifecycle_nodes_unreachable') === 1 && s.value('node_lifecycle_nodes_reachable') === 2);
  expect(after.value('node_lifecycle_nodes', { state: 'active' })).toBe(3);
});

test('a bulk commission: its operations are seen holding slots against the cap, then its duration is observed once', async () => {
  const group = nodes.slice(0, 2);
  // The hooks run until the test lets them finish, so the running operations can be seen without racing them.
  for (const n of group) installHook(fleet, n, 'commission', 'while [ ! -f "$NODEAGENT_SANDBOX/go" ]; do sleep 0.1; done');
  const idle = await scrape();
  expect(idle.value('node_lifecycle_operation_slots_cap', { pool: 'general' })).toBe(CAP);
  expect(idle.value('node_lifecycle_operation_slots_cap', { pool: 'install' })).toBe(ts.config.maxConcurrentDeploys);
  expect(idle.value('node_lifecycle_task_duration_seconds_count', { kind: 'commission', status: 'succeeded' }) ?? 0).toBe(0);

  const res = await ts.api.post('/api/v1/commission/nodes', { nodes: group });
  expect(res.status).toBe(202);
  const busy = await until('two operations holding general slots', (s) => s.value('node_lifecycle_operation_slots_used', { pool: 'general' }) === 2);
  expect(busy.value('node_lifecycle_operations', { pool: 'general', status: 'running' })).toBe(2);
  expect(busy.value('node_lifecycle_operations', { pool: 'install', status: 'running' })).toBe(0);
  expect(busy.value('node_lifecycle_operation_slots_wanted', { pool: 'general' })).toBe(0);

  for (const n of group) fs.writeFileSync(path.join(fleet.sandbox(n), 'go'), '');
  expect((await waitForTask(ts, res.body.task_id)).body.status).toBe('succeeded');
  const done = await until('the commission observed', (s) => s.value('node_lifecycle_task_duration_seconds_count', { kind: 'commission', status: 'succeeded' }) === 1);
  expect(done.value('node_lifecycle_task_duration_seconds_bucket', { kind: 'commission', status: 'succeeded', le: '+Inf' })).toBe(1);
  expect(done.value('node_lifecycle_task_queued_seconds_count', { kind: 'commission' })).toBe(1);
  expect(done.value('node_lifecycle_operation_slots_used', { pool: 'general' })).toBe(0);
  // Read again by the next scrape, it is not counted twice.
  expect((await scrape()).value('node_lifecycle_task_duration_seconds_count', { kind: 'commission', status: 'succeeded' })).toBe(1);
});

test('a call to an agent that is not listening is counted as connection_refused', async () => {
  const before = (await scrape()).value('node_lifecycle_agent_call_errors_total', { kind: 'connection_refused' }) ?? 0;
  const dead = await agents.start('dead');
  await dead.stop();
  // Accepted while down: the initialization checks call its address, where nothing listens any more.
  expect((await acceptNode(ts, dead.hostname, dead.fingerprint)).status).toBe(202);
  await until('a refused connection counted', (s) => (s.value('node_lifecycle_agent_call_errors_total', { kind: 'connection_refused' }) ?? 0) > before);
});

test('API requests are counted and timed by route pattern and status, refused and unknown ones too', async () => {
  const key = (route: string, status: string, method = 'GET') => ({ method, route, status });
  const expected: [Record<string, string>, number][] = [
    [key('/api/v1/nodes/:hostname', '200'), 3],
    [key('/api/v1/nodes/:hostname', '404'), 1],
    [key('unmatched', '401'), 1],
    [key('unmatched', '404'), 1],
    [key('/api/v1/commission/nodes', '400', 'POST'), 1],
  ];
  const before = await scrape();
  const count = (m: Scrape, labels: Record<string, string>) => m.value('node_lifecycle_http_requests_total', labels) ?? 0;

  for (let i = 0; i < 3; i++) expect((await ts.api.get(`/api/v1/nodes/${nodes[0]}`)).status).toBe(200);
  expect((await ts.api.get(`/api/v1/nodes/${ts.hostname('ghost')}`)).status).toBe(404);
  expect((await ts.anonymous.get(`/api/v1/nodes/${nodes[0]}`)).status).toBe(401);
  expect((await ts.api.get('/api/v1/no/such/route')).status).toBe(404);
  expect((await ts.api.post('/api/v1/commission/nodes', { nodes: [] })).status).toBe(400);

  const after = await until('every request counted', (m) => expected.every(([labels, n]) => count(m, labels) - count(before, labels) === n));
  for (const [labels, n] of expected) {
    const observed = (after.value('node_lifecycle_http_request_duration_seconds_count', labels) ?? 0) - (before.value('node_lifecycle_http_request_duration_seconds_count', labels) ?? 0);
    expect([labels, observed]).toEqual([labels, n]);
  }
  // The pattern, never the URL: no host name, no unknown path becomes a label value.
  expect(after.text).not.toContain(`route="/api/v1/nodes/${nodes[0]}"`);
  expect(after.text).not.toContain('no/such/route');
});

test("the Temporal worker's own metrics are part of the scrape", async () => {
  const m = await until('temporal_ metrics', (s) => /^temporal_\w+/m.test(s.text));
  expect(m.value('node_lifecycle_temporal_metrics_up')).toBe(1);
  expect(m.text).toMatch(new RegExp(`^temporal_\\w+\\{[^}]*task_queue="${ts.config.taskQueue}"`, 'm'));
});

test('/metrics needs the operator token, unless METRICS_PUBLIC=1', async () => {
  const refused = await ts.anonymous.get('/metrics');
  expect(refused.status).toBe(401);
  expect(refused.body.error.code).toBe('unauthorized');
  expect((await ts.anonymous.withToken('not-the-token').get('/metrics')).status).toBe(401);
  expect((await ts.api.get('/metrics')).status).toBe(200);

  // A second service, API only, on the same database: open to any scraper, reading the same fleet.
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'nl-metrics-public-'));
  const open = await startService({ ...ts.config, dataDir, port: 0, metricsPublic: true }, 'api');
  try {
    const m = await scrape(new HttpClient(open.apiUrl!));
    const fleetNow = await scrape();
    for (const state of ['active', 'commissioned', 'failed']) expect([state, m.value('node_lifecycle_nodes', { state })]).toEqual([state, fleetNow.value('node_lifecycle_nodes', { state })]);
    expect(m.value('node_lifecycle_nodes', { state: 'commissioned' })).toBe(2);
  } finally {
    await open.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
});

describe('the incremental reader behind the duration histograms', () => {
  type Row = { id: number; finished_at: Date };
  const at = (ms: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, 0, ms));

  test('returns each row once, takes a row committed late within the look-back, and forgets what the look-back has passed', async () => {
    const table: Row[] = [];
    const asked: Date[] = [];
    const reader = new FinishedSince<Row>(
      async (since) => {
        asked.push(since);
        return table.filter((r) => r.finished_at > since);
      },
      at(0),
      10_000,
    );
    table.push({ id: 1, finished_at: at(-1) }, { id: 2, finished_at: at(5_000) });
    // Row 1 finished just before the reader started: within the look-back, so it is taken too.
    expect((await reader.take()).map((r) => r.id)).toEqual([1, 2]);
    expect(await reader.take()).toEqual([]);

    // Committed after the reader passed its time (a worker whose clock lags by 3 s): still taken, once.
    table.push({ id: 3, finished_at: at(2_000) }, { id: 4, finished_at: at(30_000) });
    expect((await reader.take()).map((r) => r.id)).toEqual([3, 4]);
    expect(await reader.take()).toEqual([]);
    expect(asked.at(-1)).toEqual(at(20_000));
  });
});
