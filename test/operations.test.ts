import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { Fleet } from '../src/fleet/simulator';
import { installHook, startActiveFleet, waitForTask } from './support/fleet';
import { nodeState, startTestService, type TestService } from './support/harness';
import { waitFor } from './support/wait-for';

const CAP = 3;
let ts: TestService;
let fleet: Fleet;
let nodes: string[];
/** Each test that changes nodes owns a slice of the fleet, so no test depends on another having run. */
const OWN = {
  commission: [0, 8],
  rollback: [8, 12],
  decommission: [12, 15],
  maintenance: [15, 16],
  scheduling: [16, 28],
  hookOutput: [28, 29],
} as const;
const own = (test: keyof typeof OWN) => nodes.slice(...OWN[test]);

beforeAll(async () => {
  ts = await startTestService({
    MAX_CONCURRENT_OPERATIONS: String(CAP),
    CLUSTER_EXTRA_VARS: '{"ntp_server":"ntp.cluster","region":"cluster-default"}',
  });
  fleet = await startActiveFleet(ts, 29, 'ops');
  nodes = fleet.hostnames;
  for (const n of nodes) {
    // Each hook leaves a record of its run and of the vars it was given, inside the node's sandbox.
    for (const op of ['commission', 'decommission', 'maintenance']) {
      installHook(fleet, n, op, `cat > "$NODEAGENT_SANDBOX/${op}.vars.json"; echo ran >> "$NODEAGENT_SANDBOX/${op}.runs"`);
    }
  }
  // 29 agents announced, accepted and initialized: minutes when the CPU is shared many ways.
}, 600_000);
afterAll(async () => {
  await fleet?.stop();
  await ts?.stop();
});

const post = (kind: string, body: unknown) => ts.api.post(`/api/v1/${kind}/nodes`, body);
const states = async (names: string[]) => Object.fromEntries(await Promise.all(names.map(async (n) => [n, await nodeState(ts, n)])));
const sandboxFile = (node: string, file: string) => path.join(fleet.sandbox(node), file);
const runs = (node: string, op: string) =>
  fs.existsSync(sandboxFile(node, `${op}.runs`)) ? fs.readFileSync(sandboxFile(node, `${op}.runs`), 'utf8').trim().split('\n').length : 0;
const allEqual = (names: string[], value: string) => Object.fromEntries(names.map((n) => [n, value]));

describe('refused requests start nothing', () => {
  let before: { tasks: number; operations: number };
  beforeEach(async () => {
    before = { tasks: (await ts.api.get('/api/v1/tasks')).body.length, operations: (await ts.api.get(`/api/v1/nodes/${nodes[0]}`)).body.operations.length };
  });
  afterEach(async () => {
    expect((await ts.api.get('/api/v1/tasks')).body.length).toBe(before.tasks);
    expect((await ts.api.get(`/api/v1/nodes/${nodes[0]}`)).body.operations.length).toBe(before.operations);
  });

  test('an empty list gets 400 naming nodes', async () => {
    const res = await post('commission', { nodes: [] });
    expect(res.status).toBe(400);
    expect(res.body.error.fields).toEqual([{ field: 'nodes', problem: 'must name at least one node' }]);
  });

  test('unknown nodes get 404 naming every one of them', async () => {
    const res = await post('commission', { nodes: [nodes[0], 'ghost-1.test', 'ghost-2.test'] });
    expect(res.status).toBe(404);
    expect(res.body.error.offenders).toEqual([
      { node: 'ghost-1.test', problem: 'unknown node' },
      { node: 'ghost-2.test', problem: 'unknown node' },
    ]);
  });

  test('a 10,000-name request is read whole and every unknown name is reported', async () => {
    const names = Array.from({ length: 10_000 }, (_, i) => `fleet-${i}.unknown.test`);
    const res = await post('commission', { nodes: names });
    expect(res.status).toBe(404);
    expect(res.body.error.offenders).toHaveLength(10_000);
  });

  test('a list naming a node twice, or extra_vars that is not an object, gets 400', async () => {
    expect((await post('decommission', { nodes: [nodes[0], nodes[0]] })).body.error.fields[0]).toEqual({ field: 'nodes', problem: 'must not name a node twice' });
    expect((await post('decommission', { nodes: [nodes[0]], extra_vars: [1] })).body.error.fields[0].field).toBe('extra_vars');
    expect((await post('decommission', { nodes: ['bad name'] })).status).toBe(400);
  });
});

describe('info/nodes', () => {
  /** GET with a JSON body, as contiv's API takes it (fetch cannot send one; curl -X GET -d can). */
  function getWithBody(body: unknown): Promise<{ status: number; body: any }> {
    const url = new URL('/api/v1/info/nodes', ts.service.apiUrl);
    const payload = JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = http.request(
        url,
        { method: 'GET', headers: { authorization: `Bearer ${ts.service.apiToken}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } },
        (res) => {
          let text = '';
          res.on('data', (d) => (text += d));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
        },
      );
      req.on('error', reject);
      req.end(payload);
    });
  }

  test('names in the body or the query limit the answer; unknown names are ignored; none means all', async () => {
    const byBody = await getWithBody({ nodes: [nodes[1], 'ghost.test', nodes[0]] });
    expect(byBody.status).toBe(200);
    expect(byBody.body.map((n: { hostname: string }) => n.hostname)).toEqual([nodes[0], nodes[1]]);
    const byQuery = await ts.api.get(`/api/v1/info/nodes?nodes=${nodes[2]},ghost.test`);
    expect(byQuery.body.map((n: { hostname: string }) => n.hostname)).toEqual([nodes[2]]);
    const all = await getWithBody({ nodes: [] });
    expect(all.body.length).toBeGreaterThanOrEqual(nodes.length);
    expect((await getWithBody({ nodes: 'x' })).status).toBe(400);
  });
});

describe('commission', () => {
  test('eight nodes are commissioned together with merged extra_vars, never more than the cap at once', async () => {
    const group = own('commission');
    fleet.gauge.maxRunning = 0;
    for (const n of group) fleet.slowHook(n, 'commission', 150);

    const res = await post('commission', { nodes: group, extra_vars: { region: 'eu-1', role: 'storage' } });

    expect(res.status).toBe(202);
    expect(res.headers.get('location')).toBe(`/api/v1/tasks/${res.body.task_id}`);
    const task = (await waitForTask(ts, res.body.task_id)).body;
    expect(task).toMatchObject({ status: 'succeeded', kind: 'commission', decision: 'commit', progress: { total: 8, succeeded: 8, failed: 0 } });
    expect(task.nodes.map((n: { hostname: string; status: string }) => [n.hostname, n.status])).toEqual(group.map((n) => [n, 'succeeded']));
    expect(await states(group)).toEqual(allEqual(group, 'commissioned'));
    // Request vars over cluster defaults.
    const vars = JSON.parse(fs.readFileSync(sandboxFile(group[7]!, 'commission.vars.json'), 'utf8'));
    expect(vars).toEqual({ operation: 'commission', hostname: group[7], extra_vars: { ntp_server: 'ntp.cluster', region: 'eu-1', role: 'storage' } });
    expect(fleet.gauge.maxRunning).toBeGreaterThan(0);
    expect(fleet.gauge.maxRunning).toBeLessThanOrEqual(CAP);
    expect(fleet.gauge.maxOnOneNode).toBe(1);
    for (const n of group) fleet.clearInjections(n);
  });

  test('when one node fails, every node of the request is cleaned up and returned to its state, and the request can be posted again', async () => {
    const group = own('rollback');
    fleet.failHook(group[2]!, 'commission', 'disk /dev/sdb missing');

    const res = await post('commission', { nodes: group });
    const task = (await waitForTask(ts, res.body.task_id)).body;

    expect(task).toMatchObject({ status: 'failed', decision: 'rollback', progress: { failed: 4 } });
    expect(await states(group)).toEqual(allEqual(group, 'active'));
    for (const n of group) expect(runs(n, 'decommission')).toBe(1);
    const failing = (await ts.api.get(`/api/v1/nodes/${group[2]}`)).body;
    expect(failing.last_error).toBe('commission hook exited 1: disk /dev/sdb missing');
    const bystander = (await ts.api.get(`/api/v1/nodes/${group[0]}`)).body;
    expect(bystander.last_error).toBe('rolled back: another node of the request failed');
    expect(bystander.events.at(-1)).toMatchObject({ from_state: 'commissioning', to_state: 'active', event: 'commission_failed' });

    fleet.clearInjections(group[2]!);
    const again = await post('commission', { nodes: group });
    expect((await waitForTask(ts, again.body.task_id)).body.status).toBe('succeeded');
    expect(await states(group)).toEqual(allEqual(group, 'commissioned'));
  });
});

describe('decommission and maintenance', () => {
  test('decommission never fails as a whole: failing cleanup steps are recorded on their nodes', async () => {
    const group = own('decommission');
    fleet.failHook(group[1]!, 'decommission', 'could not wipe /dev/sda');

    const res = await post('decommission', { nodes: group });
    const task = (await waitForTask(ts, res.body.task_id)).body;

    expect(task.status).toBe('succeeded');
    expect(task.nodes.map((n: { error: string | null }) => n.error)).toEqual([null, 'decommission hook exited 1: could not wipe /dev/sda', null]);
    expect(await states(group)).toEqual(allEqual(group, 'decommissioned'));
    expect((await ts.api.get(`/api/v1/nodes/${group[1]}`)).body.last_error).toBe('decommission hook exited 1: could not wipe /dev/sda');
    fleet.clearInjections(group[1]!);
  });

  test('maintenance silences monitoring and takes the node out of scheduling; commission brings it back', async () => {
    const node = own('maintenance')[0]!;
    const monitoring = () => JSON.parse(fs.readFileSync(sandboxFile(node, 'etc/nodeagent/monitoring.json'), 'utf8'));

    await waitForTask(ts, (await post('maintenance', { nodes: [node] })).body.task_id);
    expect(await nodeState(ts, node)).toBe('maintenance');
    expect(monitoring().silenced).toBe(true);
    expect((await ts.api.get(`/api/v1/nodes/${node}`)).body.monitoring_silenced).toBe(true);
    const refused = await post('maintenance', { nodes: [node] });
    expect(refused.status).toBe(409);
    expect(refused.body.error.offenders).toEqual([{ node, problem: 'is maintenance', state: 'maintenance', allowed: ['commission', 'decommission'] }]);
    // Unknown and forbidden together: 404, and every offender is named.
    const mixed = await post('maintenance', { nodes: ['ghost-3.test', node] });
    expect(mixed.status).toBe(404);
    expect(mixed.body.error.offenders.map((o: { node: string }) => o.node)).toEqual(['ghost-3.test', node]);

    await waitForTask(ts, (await post('commission', { nodes: [node] })).body.task_id);
    expect(await nodeState(ts, node)).toBe('commissioned');
    expect(monitoring().silenced).toBe(false);
  });
});

test('hook output holding a NUL byte is recorded with it replaced, and the operation completes', async () => {
  const node = own('hookOutput')[0]!;
  installHook(fleet, node, 'maintenance', "printf 'before\\000after'");

  const task = (await waitForTask(ts, (await post('maintenance', { nodes: [node] })).body.task_id)).body;

  expect(task.status).toBe('succeeded');
  expect(task.nodes[0].result.maintenance).toMatchObject({ ran: true, exit_code: 0, stdout: 'before\uFFFDafter' });
  expect(await nodeState(ts, node)).toBe('maintenance');
});

describe('scheduling', () => {
  test('conflicting requests queue per node in submission order, visibly, within the cap, across two workers and a restart', async () => {
    await ts.addWorker();
    const group = own('scheduling');
    for (const n of group) fleet.slowHook(n, 'maintenance', 300);
    const before = { total: fleet.gauge.total };
    fleet.gauge.maxRunning = 0;

    const first = await post('maintenance', { nodes: group });
    const second = await post('commission', { nodes: group.slice(0, 6) });
    const third = await post('decommission', { nodes: group.slice(3, 9) });
    expect([first.status, second.status, third.status]).toEqual([202, 202, 202]);

    const queued = (await ts.api.get(`/api/v1/nodes/${group[4]}`)).body.operations;
    expect(queued.map((o: { kind: string }) => o.kind)).toEqual(['maintenance', 'commission', 'decommission']);
    expect(queued.slice(1).map((o: { status: string }) => o.status)).toEqual(['queued', 'queued']);

    await waitFor(() => ts.api.get(`/api/v1/tasks/${first.body.task_id}`), (r) => r.body.progress.succeeded >= 3, { what: 'some progress' });
    await ts.restart();

    for (const id of [first.body.task_id, second.body.task_id, third.body.task_id]) expect((await waitForTask(ts, id)).body.status).toBe('succeeded');
    // maintenance for all; then commission for 0-5; then decommission for 3-8, in that order per node.
    const expected = Object.fromEntries(group.map((n, i) => [n, i >= 3 && i < 9 ? 'decommissioned' : i < 3 ? 'commissioned' : 'maintenance']));
    expect(await states(group)).toEqual(expected);
    expect(fleet.gauge.total - before.total).toBe(12 + 6 + 6);
    expect(fleet.gauge.maxRunning).toBeLessThanOrEqual(CAP);
    expect(fleet.gauge.maxOnOneNode).toBe(1);
  });
});
