/**
 * Deployments, roles and noderoles over REST (issue #12), checked where it matters: on the nodes. Every
 * script role here is the recorder of test/support/anneal-recorder.ts, which writes what it read and when
 * it started and ended into a log the test reads. One service and one simulated fleet for the file; each
 * test owns its nodes, roles and deployments.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Fleet } from '../src/fleet/simulator';
import { allIn, annealApi, must } from './support/anneal-api';
import { concurrency, installRecorderHook, readRuns, runsOf, RECORDER_SCRIPT } from './support/anneal-recorder';
import { startBmc, type Bmc } from './support/bmc';
import { startActiveFleet } from './support/fleet';
import { startTestAgent, startTestService, type TestAgent, type TestService } from './support/harness';
import type { HttpResponse } from './support/http-client';
import { startProvisionedService, type ProvisionedService } from './support/provisioned-service';
import { pxeLabAvailable } from './support/pxe-lab';
import { waitFor } from './support/wait-for';

jest.setTimeout(300_000);

const CAP = 2;
let ts: TestService;
let fleet: Fleet;
let nodes: string[];
/** The seed's walk-through needs the PXE lab; without it only that test fails, saying why. */
let provisioned: ProvisionedService | undefined;
let labMissing: string | null = null;
const bmcs: Bmc[] = [];
const agents: TestAgent[] = [];
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'nl-anneal-'));
const anneal = annealApi(() => ts);

/** Each test owns a slice of the fleet, so none depends on another having run. */
const OWN = {
  tree: [0, 3],
  order: [3, 5],
  error: [5, 7],
  recommit: [7, 9],
  validation: [9, 10],
  precedence: [10, 11],
  compete: [11, 15],
  arrive: [15, 16],
  fix: [16, 17],
} as const;
const own = (test: keyof typeof OWN) => nodes.slice(...OWN[test]);
// Deployment names are this file's own (the annealer's workflow ids may be made from them).
const uniq = Math.random().toString(36).slice(2, 6);
const dep = (label: string) => `${label}-${uniq}`;
const logFile = (label: string) => path.join(work, `${label}.log`);

beforeAll(async () => {
  // A long initialization window: the test of a node still initializing keeps one there while its agent is down.
  const env = { MAX_CONCURRENT_OPERATIONS: String(CAP), INIT_WINDOW: '10m' };
  labMissing = await pxeLabAvailable();
  if (labMissing) {
    ts = await startTestService(env);
  } else {
    // The test plays the machine and answers at once: long phase deadlines keep a loaded machine from failing one.
    provisioned = await startProvisionedService('anneal', { ...env, DEPLOY_LEASE_TIMEOUT: '5m', DEPLOY_INSTALLER_TIMEOUT: '5m', DEPLOY_BOOT_TIMEOUT: '5m' });
    ts = provisioned.ts;
  }
  fleet = await startActiveFleet(ts, 17, 'dep');
  nodes = fleet.hostnames;
}, 600_000);

afterAll(async () => {
  await Promise.all(agents.map((a) => a.stop()));
  await fleet?.stop();
  if (provisioned) await provisioned.stop();
  else await ts?.stop();
  await Promise.all(bmcs.map((b) => b.stop()));
  fs.rmSync(work, { recursive: true, force: true });
});

const get = async (url: string) => (await ts.api.get(url)).body;
const deployment = (name: string) => get(`/api/v1/deployments/${name}`);
const del = (url: string) => ts.api.request('DELETE', url);
/** A refusal: its status, and every name it must mention somewhere in its error. */
function expectRefused(res: HttpResponse, status: number, ...names: string[]) {
  expect(res.status).toBe(status);
  expect(res.body.error).toEqual(expect.objectContaining({ code: expect.any(String), message: expect.any(String) }));
  for (const name of names) expect(JSON.stringify(res.body.error)).toContain(name);
}

describe('the tree', () => {
  test('system is the root and cannot be proposed; deployments nest three levels deep and go leaves first', async () => {
    const system = await deployment('system');
    expect(system).toMatchObject({ name: 'system', parent: null, path: ['system'] });
    expectRefused(await ts.api.post('/api/v1/deployments/system/propose'), 409, 'system');

    const [a, b, c] = [dep('tree-a'), dep('tree-b'), dep('tree-c')];
    expect(await anneal.deployment(a)).toMatchObject({ name: a, parent: 'system', state: 'proposed', nodes: 0 });
    expect(await anneal.deployment(b, a)).toMatchObject({ name: b, parent: a });
    expect(await anneal.deployment(c, b)).toMatchObject({ name: c, parent: b });

    expect((await deployment(c)).path).toEqual(['system', a, b, c]);
    expect((await deployment(a)).tree).toMatchObject({ name: a, children: [{ name: b, children: [{ name: c, children: [] }] }] });
    expect((await deployment('system')).tree.children.map((d: { name: string }) => d.name)).toContain(a);
    expect((await get(`/api/v1/deployments?parent=${b}`)).map((d: { name: string }) => d.name)).toEqual([c]);

    expectRefused(await ts.api.post('/api/v1/deployments', { name: dep('orphan'), parent: 'no-such-parent' }), 404, 'no-such-parent');
    expectRefused(await ts.api.post('/api/v1/deployments', { name: a }), 409, a);
    expectRefused(await del(`/api/v1/deployments/${a}`), 409, a);
    expectRefused(await del('/api/v1/deployments/system'), 409, 'system');
    expect((await ts.api.get(`/api/v1/deployments/${dep('orphan')}`)).status).toBe(404);
    expect((await deployment(a)).tree).toMatchObject({ children: [{ name: b, children: [{ name: c }] }] });

    for (const name of [c, b, a]) expect((await del(`/api/v1/deployments/${name}`)).status).toBe(204);
    expect((await ts.api.get(`/api/v1/deployments/${a}`)).status).toBe(404);
  });

  test('a node belongs to exactly one deployment: binding it in a second one is a 409 naming it', async () => {
    const [node] = own('tree') as [string];
    const [x, y] = [dep('one-x'), dep('one-y')];
    await anneal.role('tree-web', { attributes: { log: logFile('tree') } });
    await anneal.deployment(x);
    await anneal.deployment(y);
    const inSystem = (await deployment('system')).nodes;

    const bound = await anneal.bind(x, 'tree-web', [node]);

    expect(bound.noderoles).toEqual([expect.objectContaining({ deployment: x, role: 'tree-web', node, state: 'proposed' })]);
    expect((await deployment(x)).nodes).toBe(1);
    expect((await deployment('system')).nodes).toBe(inSystem - 1);
    expect((await ts.api.get(`/api/v1/nodes/${node}`)).body.deployment).toBe(x);
    expectRefused(await ts.api.post(`/api/v1/deployments/${y}/bind`, { role: 'tree-web', nodes: [node] }), 409, node);
    // Moving it out while it has noderoles is refused as well: unbind first.
    expectRefused(await ts.api.post(`/api/v1/deployments/${y}/nodes`, { nodes: [node] }), 409, node);
    expect(await anneal.noderoles({ node })).toEqual([expect.objectContaining({ deployment: x, role: 'tree-web' })]);
    expect((await deployment(y)).nodes).toBe(0);

    expect(must(await ts.api.post(`/api/v1/deployments/${x}/unbind`, { role: 'tree-web', nodes: [node] }), 200, 'unbind')).toEqual({ removed: 1 });
    expect(must(await ts.api.post(`/api/v1/deployments/${y}/nodes`, { nodes: [node] }), 200, 'move')).toEqual({ moved: [node] });
    expect([(await deployment(x)).nodes, (await deployment(y)).nodes]).toEqual([0, 1]);
    expect((await ts.api.get(`/api/v1/nodes/${node}`)).body.deployment).toBe(y);
    must(await ts.api.post('/api/v1/deployments/system/nodes', { nodes: [node] }), 200, 'give back');
    expect((await deployment('system')).nodes).toBe(inSystem);
    for (const name of [x, y]) expect((await del(`/api/v1/deployments/${name}`)).status).toBe(204);
  });

  test('a node with no work moves; one with an operation running does not, and nothing of the request moves', async () => {
    const [, idle, busy] = own('tree') as [string, string, string];
    const d = dep('move');
    await anneal.deployment(d);
    const log = logFile('move');
    const hold = path.join(work, 'move.hold');
    installRecorderHook(fleet.sandbox(busy), 'commission');
    const op = must(await ts.api.post('/api/v1/commission/nodes', { nodes: [busy], extra_vars: { log, hold } }), 202, 'commission');
    await waitFor(async () => readRuns(log).length, (n) => n === 1, { what: 'the commission hook to start' });

    expectRefused(await ts.api.post(`/api/v1/deployments/${d}/nodes`, { nodes: [idle, busy] }), 409, busy);
    expect((await deployment(d)).nodes).toBe(0);
    expectRefused(await ts.api.post(`/api/v1/deployments/${d}/nodes`, { nodes: ['ghost.test'] }), 404, 'ghost.test');

    fs.writeFileSync(hold, '');
    expect((await anneal.settle(op.task_id)).status).toBe('succeeded');
    const moved = must(await ts.api.post(`/api/v1/deployments/${d}/nodes`, { nodes: [idle, busy] }), 200, 'move');
    expect([...moved.moved].sort()).toEqual([idle, busy].sort());
    expect((await deployment(d)).nodes).toBe(2);
    expectRefused(await del(`/api/v1/deployments/${d}`), 409, d);

    must(await ts.api.post('/api/v1/deployments/system/nodes', { nodes: [idle, busy] }), 200, 'give back');
    expect((await del(`/api/v1/deployments/${d}`)).status).toBe(204);
  });
});

test('three roles run in dependency order on each of two nodes, as the agents saw it', async () => {
  const group = own('order');
  const d = dep('order');
  const log = logFile('order');
  const roles = ['order-r1', 'order-r2', 'order-r3'];
  await anneal.role('order-r1', { attributes: { log, sleep_ms: 300 } });
  await anneal.role('order-r2', { requires: ['order-r1'], attributes: { log, sleep_ms: 300 } });
  await anneal.role('order-r3', { requires: ['order-r2'], attributes: { log } });
  await anneal.deployment(d);
  // Binding the last role binds what it requires on the same nodes.
  await anneal.bind(d, 'order-r3', group);
  expect(await anneal.states(d)).toEqual(allIn('proposed', roles, group));

  const res = await ts.api.post(`/api/v1/deployments/${d}/commit`);

  expect(res.status).toBe(202);
  expect(res.body).toMatchObject({ deployment: d, noderoles: 6 });
  expect(res.headers.get('location')).toBe(`/api/v1/tasks/${res.body.task_id}`);
  const task = await anneal.settle(res.body.task_id);
  expect(task).toMatchObject({ kind: 'anneal', status: 'succeeded', details: { deployment: d }, progress: { total: 6, active: 6, error: 0, blocked: 0 } });
  expect(task.noderoles.map((n: { state: string }) => n.state)).toEqual(Array(6).fill('active'));
  expect(await anneal.states(d)).toEqual(allIn('active', roles, group));
  expect(await deployment(d)).toMatchObject({ state: 'committed', noderole_counts: { active: 6, todo: 0, transition: 0 } });

  const runs = readRuns(log);
  for (const node of group) {
    const [r1, r2, r3] = roles.map((role) => runsOf(runs, role, node));
    expect([r1!.length, r2!.length, r3!.length]).toEqual([1, 1, 1]);
    expect(r1![0]!.end).toBeLessThanOrEqual(r2![0]!.start);
    expect(r2![0]!.end).toBeLessThanOrEqual(r3![0]!.start);
    expect(r3![0]!.input).toEqual({ role: 'order-r3', hostname: node, deployment: d, attributes: { log } });
  }
});

test('a node still initializing is left alone until it is active, then its noderole runs', async () => {
  const d = dep('arrive');
  const log = logFile('arrive');
  const [settled] = own('arrive');
  await anneal.role('arrive-r', { attributes: { log } });
  // A real agent, accepted while it is down: its node stays initializing (its checks fail) until it is back.
  const agent = await startTestAgent(ts, ts.hostname('arrive'));
  agents.push(agent);
  await waitFor(() => ts.api.get(`/api/v1/nodes/${agent.hostname}`), (r) => r.body.state === 'unmanaged', { what: 'the agent to announce' });
  await agent.stop();
  must(await ts.api.post(`/api/v1/unmanaged_nodes/${agent.hostname}/accept`, { hostname: agent.hostname, fingerprint: agent.fingerprint }), 202, 'accept');
  // Within its window an unreachable node is checked again and again, and stays initializing.
  await waitFor(() => ts.api.get(`/api/v1/nodes/${agent.hostname}`), (r) => r.body.state === 'initializing', { what: 'the accept to be applied' });
  await anneal.deployment(d);
  await anneal.bind(d, 'arrive-r', [settled!, agent.hostname]);
  const taskId = await anneal.commit(d);

  // The annealer ran the noderole of the node that was there, and left the other one in todo, not in error.
  await waitFor(() => anneal.noderole(d, 'arrive-r', settled!), (n) => n.state === 'active', { what: `arrive-r on ${settled} to be active` });
  expect(await anneal.noderole(d, 'arrive-r', agent.hostname)).toMatchObject({ state: 'todo', error: null, runs: 0 });
  expect((await ts.api.get(`/api/v1/tasks/${taskId}`)).body.status).toBe('running');

  await agent.start();
  const task = await anneal.settle(taskId);
  expect(task).toMatchObject({ status: 'succeeded', progress: { total: 2, active: 2 } });
  expect(runsOf(readRuns(log), 'arrive-r', agent.hostname)).toHaveLength(1);
});

test("a re-commit that changes a failed noderole's attributes runs it, and what it blocked, under the new task", async () => {
  const [node] = own('fix') as [string];
  const d = dep('fix');
  const log = logFile('fix');
  await anneal.role('fix-r1', { attributes: { log } });
  await anneal.role('fix-r2', { requires: ['fix-r1'], attributes: { log } });
  await anneal.deployment(d);
  await anneal.bind(d, 'fix-r2', [node]);
  const r1 = await anneal.noderole(d, 'fix-r1', node);
  const patch = (attributes: Record<string, unknown>) => ts.api.request('PATCH', `/api/v1/noderoles/${r1.id}`, { json: { attributes } });
  must(await patch({ fail_unless: path.join(work, 'fix.never') }), 200, 'break r1');
  const first = await anneal.settle(await anneal.commit(d));
  expect(first).toMatchObject({ status: 'failed', progress: { total: 2, error: 1, blocked: 1 } });

  // The fix is in the attributes: propose, change them, commit.
  await anneal.propose(d);
  must(await patch({}), 200, 'mend r1');
  const second = await anneal.settle(await anneal.commit(d));

  expect(second).toMatchObject({ status: 'succeeded', progress: { total: 2, active: 2, error: 0, blocked: 0 } });
  expect(await anneal.states(d)).toEqual(allIn('active', ['fix-r1', 'fix-r2'], [node]));
  const runs = readRuns(log);
  expect([runsOf(runs, 'fix-r1', node).length, runsOf(runs, 'fix-r2', node).length]).toEqual([2, 1]);
});

test('an error blocks its dependents on that node only, and a retry unblocks them', async () => {
  const [bad, good] = own('error') as [string, string];
  const d = dep('error');
  const log = logFile('error');
  const fixed = path.join(work, 'error.fixed');
  const roles = ['err-r1', 'err-r2', 'err-r3'];
  await anneal.role('err-r1', { attributes: { log } });
  await anneal.role('err-r2', { requires: ['err-r1'], attributes: { log } });
  await anneal.role('err-r3', { requires: ['err-r2'], attributes: { log } });
  await anneal.deployment(d);
  await anneal.bind(d, 'err-r3', [bad, good]);
  const failing = await anneal.noderole(d, 'err-r1', bad);
  const patched = must(await ts.api.request('PATCH', `/api/v1/noderoles/${failing.id}`, { json: { attributes: { fail_unless: fixed } } }), 200, 'patch');
  expect(patched.effective_attributes).toEqual({ log, fail_unless: fixed });

  const task = await anneal.settle(await anneal.commit(d));

  expect(task).toMatchObject({ status: 'failed', progress: { total: 6, active: 3, error: 1, blocked: 2 } });
  expect(task.error).toContain('err-r1');
  expect(task.error).toContain(bad);
  expect(await anneal.states(d)).toEqual({
    ...allIn('active', roles, [good]),
    [`err-r1@${bad}`]: 'error',
    [`err-r2@${bad}`]: 'blocked',
    [`err-r3@${bad}`]: 'blocked',
  });
  const failed = await anneal.noderole(d, 'err-r1', bad);
  expect(failed.error).toEqual(expect.any(String));
  expect(failed.result).toMatchObject({ exit_code: 1 });
  // A list shows the outcome; the noderole itself carries the run's output.
  expect(JSON.stringify((await ts.api.get(`/api/v1/noderoles/${failed.id}`)).body.result)).toContain(`${fixed} is missing`);
  // The dependents never ran on the failing node.
  expect(readRuns(log).filter((r) => r.host === bad).map((r) => [r.what, r.failed])).toEqual([['err-r1', true]]);
  // Only the error itself can be retried.
  const blocked = await anneal.noderole(d, 'err-r2', bad);
  expectRefused(await ts.api.post(`/api/v1/noderoles/${blocked.id}/retry`), 409, 'blocked');

  fs.writeFileSync(fixed, '');
  const retry = await ts.api.post(`/api/v1/noderoles/${failing.id}/retry`);

  expect(retry.status).toBe(202);
  expect(retry.body.noderoles).toBe(3);
  expect((await anneal.settle(retry.body.task_id)).status).toBe('succeeded');
  expect(await anneal.states(d)).toEqual(allIn('active', roles, [bad, good]));
  const onBad = readRuns(log).filter((r) => r.host === bad);
  expect(onBad.map((r) => [r.what, r.failed])).toEqual([
    ['err-r1', true],
    ['err-r1', false],
    ['err-r2', false],
    ['err-r3', false],
  ]);
  expect(onBad[1]!.end).toBeLessThanOrEqual(onBad[2]!.start);
  expect(onBad[2]!.end).toBeLessThanOrEqual(onBad[3]!.start);
  // Nothing ran again on the node that had no error.
  expect(readRuns(log).filter((r) => r.host === good)).toHaveLength(3);
});

test('a re-commit runs only what changed: a noderole with new attributes (which it reads), or the noderoles of a new role revision', async () => {
  const group = own('recommit');
  const d = dep('recommit');
  const log = logFile('recommit');
  await anneal.role('rc-base', { attributes: { log } });
  await anneal.role('rc-app', { requires: ['rc-base'], attributes: { log, color: 'blue' } });
  await anneal.deployment(d);
  await anneal.bind(d, 'rc-app', group);
  expect((await anneal.settle(await anneal.commit(d))).status).toBe('succeeded');
  const before = readRuns(log).length;
  expect(before).toBe(4);

  expect(await anneal.propose(d)).toMatchObject({ name: d, state: 'proposed' });
  expect(await anneal.states(d)).toEqual(allIn('active', ['rc-base', 'rc-app'], group));
  const target = await anneal.noderole(d, 'rc-app', group[1]!);
  const patched = must(await ts.api.request('PATCH', `/api/v1/noderoles/${target.id}`, { json: { attributes: { color: 'green' } } }), 200, 'patch');
  expect(patched.effective_attributes).toEqual({ log, color: 'green' });
  const res = await ts.api.post(`/api/v1/deployments/${d}/commit`);

  expect(res.status).toBe(202);
  expect(res.body.noderoles).toBe(1);
  expect(await anneal.settle(res.body.task_id)).toMatchObject({ status: 'succeeded', progress: { total: 1, active: 1 } });
  const again = readRuns(log).slice(before);
  expect(again.map((r) => [r.what, r.host, r.input.attributes.color])).toEqual([['rc-app', group[1], 'green']]);
  expect(await anneal.states(d)).toEqual(allIn('active', ['rc-base', 'rc-app'], group));

  // Proposed and committed again with nothing changed: nothing runs.
  await anneal.propose(d);
  const unchanged = await ts.api.post(`/api/v1/deployments/${d}/commit`);
  expect(unchanged.status).toBe(202);
  expect(unchanged.body.noderoles).toBe(0);
  expect((await anneal.settle(unchanged.body.task_id)).status).toBe('succeeded');
  expect(readRuns(log)).toHaveLength(before + 1);

  // A new revision of a role runs its noderoles again, and only those.
  await anneal.propose(d);
  const revised = must(
    await ts.api.request('PUT', '/api/v1/roles/rc-base', { json: { script: `${RECORDER_SCRIPT}// revision 2\n`, requires: [], attributes: { log } } }),
    200,
    'revise rc-base',
  );
  expect(revised.revision).toBe(2);
  const rerun = await ts.api.post(`/api/v1/deployments/${d}/commit`);
  expect(rerun.body.noderoles).toBe(2);
  expect((await anneal.settle(rerun.body.task_id)).status).toBe('succeeded');
  expect(readRuns(log).slice(before + 1).map((r) => [r.what, r.host]).sort()).toEqual(group.map((n) => ['rc-base', n]).sort());
  expect(await anneal.states(d)).toEqual(allIn('active', ['rc-base', 'rc-app'], group));
});

test('a script reads its effective attributes: role defaults, then the deployment, then the noderole', async () => {
  const [node] = own('precedence') as [string];
  const d = dep('precedence');
  const log = logFile('precedence');
  await anneal.role('prec-role', { attributes: { log, a: 'role', b: 'role', c: 'role' } });
  await anneal.deployment(d);
  const perDeployment = await ts.api.request('PUT', `/api/v1/deployments/${d}/roles/prec-role`, { json: { attributes: { b: 'deployment', c: 'deployment' } } });
  expect(perDeployment.status).toBe(200);
  expect(perDeployment.body).toEqual({ role: 'prec-role', attributes: { b: 'deployment', c: 'deployment' } });
  const bound = await anneal.bind(d, 'prec-role', [node], { c: 'noderole' });
  const effective = { log, a: 'role', b: 'deployment', c: 'noderole' };
  expect(bound.noderoles[0]).toMatchObject({ attributes: { c: 'noderole' }, effective_attributes: effective });
  expect((await deployment(d)).roles).toEqual([{ role: 'prec-role', attributes: { b: 'deployment', c: 'deployment' } }]);

  expect((await anneal.settle(await anneal.commit(d))).status).toBe('succeeded');

  expect(readRuns(log).map((r) => r.input.attributes)).toEqual([effective]);
});

test('refused definitions and requests are 4xx naming the offender, and change nothing', async () => {
  const [node] = own('validation') as [string];
  const d = dep('valid');
  const roleBody = (requires: string[] = []) => ({ script: RECORDER_SCRIPT, requires, attributes: { log: logFile('valid') } });
  const rolesBefore = (await get('/api/v1/roles')).length;

  expectRefused(await ts.api.post('/api/v1/roles', { name: 'val-a', ...roleBody(['val-ghost']) }), 400, 'val-ghost');
  expect((await ts.api.get('/api/v1/roles/val-a')).status).toBe(404);
  expect((await ts.api.post('/api/v1/roles', { name: 'Val A', ...roleBody() })).body.error.fields).toEqual([expect.objectContaining({ field: 'name' })]);
  expect((await ts.api.post('/api/v1/roles', { name: 'val-a', ...roleBody(), script: 'echo no interpreter' })).body.error.fields).toEqual([
    expect.objectContaining({ field: 'script' }),
  ]);

  // A cycle made by redefining the first role of a chain.
  await anneal.role('val-a', roleBody());
  await anneal.role('val-b', roleBody(['val-a']));
  await anneal.role('val-c', roleBody(['val-b']));
  expectRefused(await ts.api.post('/api/v1/roles', { name: 'val-a', ...roleBody() }), 409, 'val-a');
  expectRefused(await ts.api.request('PUT', '/api/v1/roles/val-a', { json: roleBody(['val-c']) }), 400, 'val-a', 'val-b', 'val-c');
  expect(await get('/api/v1/roles/val-a')).toMatchObject({ requires: [], revision: 1 });
  expectRefused(await del('/api/v1/roles/val-a'), 409, 'val-b');

  await anneal.deployment(d);
  expectRefused(await ts.api.post(`/api/v1/deployments/${d}/bind`, { role: 'val-c', nodes: [node, 'ghost-node.test'] }), 404, 'ghost-node.test');
  expectRefused(await ts.api.post(`/api/v1/deployments/${d}/bind`, { role: 'val-ghost', nodes: [node] }), 404, 'val-ghost');
  expect(await anneal.noderoles({ deployment: d })).toEqual([]);
  expect((await deployment(d)).nodes).toBe(0);

  await anneal.bind(d, 'val-c', [node]);
  expectRefused(await del('/api/v1/roles/val-c'), 409, 'val-c');
  const first = await anneal.commit(d);
  expectRefused(await ts.api.post(`/api/v1/deployments/${d}/commit`), 409, d);
  expectRefused(await ts.api.request('PATCH', `/api/v1/noderoles/${(await anneal.noderole(d, 'val-c', node)).id}`, { json: { attributes: { x: 1 } } }), 409, d);
  expectRefused(await ts.api.post('/api/v1/deployments/system/propose'), 409, 'system');
  expect((await anneal.settle(first)).status).toBe('succeeded');

  // Three roles, one deployment committed once, each noderole run once: the refusals left no trace.
  expect((await get('/api/v1/roles')).length).toBe(rolesBefore + 3);
  expect(await anneal.states(d)).toEqual(allIn('active', ['val-a', 'val-b', 'val-c'], [node]));
  expect(readRuns(logFile('valid')).map((r) => r.what)).toEqual(['val-a', 'val-b', 'val-c']);
  expect((await get(`/api/v1/noderoles/${(await anneal.noderole(d, 'val-c', node)).id}`)).attributes).toEqual({});
});

test('a deployment and a bulk commission on the same nodes share the cap and one operation per node', async () => {
  const group = own('compete');
  const d = dep('compete');
  const log = logFile('compete');
  for (const n of group) installRecorderHook(fleet.sandbox(n), 'commission');
  await anneal.role('cc-r1', { attributes: { log, sleep_ms: 300 } });
  await anneal.role('cc-r2', { requires: ['cc-r1'], attributes: { log, sleep_ms: 300 } });
  await anneal.deployment(d);
  await anneal.bind(d, 'cc-r2', group);
  fleet.gauge.maxRunning = 0;
  fleet.gauge.maxOnOneNode = 0;

  // The commission comes while the anneal runs: it queues behind the noderoles already handed to the nodes and
  // ahead of those still waiting for their dependencies, and both draw on one cap.
  const commit = await ts.api.post(`/api/v1/deployments/${d}/commit`);
  await waitFor(async () => readRuns(log).length, (n) => n > 0, { what: 'the anneal to start a script', intervalMs: 20 });
  const commission = await ts.api.post('/api/v1/commission/nodes', { nodes: group, extra_vars: { log, sleep_ms: 300 } });

  expect([commit.status, commission.status]).toEqual([202, 202]);
  expect((await anneal.settle(commit.body.task_id)).status).toBe('succeeded');
  expect((await anneal.settle(commission.body.task_id)).status).toBe('succeeded');
  const runs = readRuns(log);
  for (const n of group) {
    expect(['commission', 'cc-r1', 'cc-r2'].map((what) => runsOf(runs, what, n).length)).toEqual([1, 1, 1]);
    expect(runsOf(runs, 'cc-r1', n)[0]!.end).toBeLessThanOrEqual(runsOf(runs, 'cc-r2', n)[0]!.start);
  }
  expect(runs.every((r) => r.end !== undefined && !r.failed)).toBe(true);
  const seen = concurrency(runs);
  expect(seen.maxRunning).toBeGreaterThan(0);
  expect(seen.maxRunning).toBeLessThanOrEqual(CAP);
  expect(seen.maxOnOneNode).toBe(1);
  // The agents' own gauge (every hook they ran) agrees.
  expect(fleet.gauge.maxRunning).toBeLessThanOrEqual(CAP);
  expect(fleet.gauge.maxOnOneNode).toBeLessThanOrEqual(1);
  expect(await anneal.states(d)).toEqual(allIn('active', ['cc-r1', 'cc-r2'], group));
  for (const n of group) expect((await get(`/api/v1/nodes/${n}`)).state).toBe('commissioned');
});

describe("the seed's walk-through", () => {
  const imageDir = path.join(work, 'image');
  const imageBody = (name: string) => {
    const disk = path.join(imageDir, 'disk');
    return { name, kernel: path.join(imageDir, 'kernel'), initrd: path.join(imageDir, 'initrd'), disk, sha256: createHash('sha256').update(fs.readFileSync(disk)).digest('hex') };
  };
  const getNode = async (name: string) => (await ts.api.get(`/api/v1/nodes/${name}`)).body;
  const hasPhase = (n: any, phase: string) => (n.deploy?.phases ?? []).some((p: { phase: string }) => p.phase === phase);

  test('a manageable node bound to os-install (image tiny) and a role requiring it is installed, then the role runs on it', async () => {
    if (!provisioned) throw new Error(`the PXE lab cannot run here: ${labMissing}`);
    const machineUrl = provisioned.url;
    fs.mkdirSync(imageDir, { recursive: true });
    for (const part of ['kernel', 'initrd', 'disk']) fs.writeFileSync(path.join(imageDir, part), `${part} of a tiny image\n`.repeat(100));
    must(await ts.api.post('/api/v1/images', imageBody('tiny')), 201, 'register the image');
    const bmc = await startBmc();
    bmcs.push(bmc);
    const name = ts.hostname('seed');
    const mac = '52:54:00:a2:00:10';
    must(await ts.api.post('/api/v1/nodes', { name, driver: 'ipmi', driver_info: bmc.driverInfo(), ports: [{ address: mac }] }), 201, 'enroll');
    must(await ts.api.request('PUT', `/api/v1/nodes/${name}/states/provision`, { json: { target: 'manage' } }), 202, 'manage');
    await waitFor(() => getNode(name), (n) => n.state === 'manageable', { what: `${name} to be manageable`, timeoutMs: 120_000, intervalMs: 200 });

    // The seed: create a deployment, add os-install with image tiny, bind the node, commit.
    const d = dep('seed');
    const log = logFile('seed');
    await anneal.role('seed-app', { requires: ['os-install'], attributes: { log } });
    await anneal.deployment(d);
    must(await ts.api.request('PUT', `/api/v1/deployments/${d}/roles/os-install`, { json: { attributes: { image: 'tiny' } } }), 200, 'add os-install');
    await anneal.bind(d, 'seed-app', [name]);
    const taskId = await anneal.commit(d);

    // The install runs first; the role that needs it waits.
    const cycled = await waitFor(() => getNode(name), (n) => hasPhase(n, 'power_cycled') || n.state === 'deploy failed', {
      what: 'the power cycle',
      timeoutMs: 120_000,
      intervalMs: 200,
    });
    expect(cycled).toMatchObject({ state: 'deploying', deploy: { image: 'tiny' } });
    expect(await anneal.states(d)).toEqual({ [`os-install@${name}`]: 'transition', [`seed-app@${name}`]: 'todo' });

    // The test is the machine: it fetches its installer, reports progress, and its installed OS's agent rejoins.
    const script = await (await fetch(`${machineUrl}/boot/${mac.replace(/:/g, '-')}.ipxe`)).text();
    const token = /nl\.token=(\S+)/.exec(script)?.[1];
    expect(token).toBeTruthy();
    const callback = async (body: Record<string, unknown>) => {
      const res = await fetch(`${machineUrl}/provisioning/v1/callback`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      expect(await res.json()).toEqual({ applied: true });
    };
    const sha256 = imageBody('tiny').sha256;
    await callback({ event: 'installing' });
    await callback({ event: 'image_written', sha256 });
    const agent = await startTestAgent(ts, name, { serverUrl: machineUrl });
    agents.push(agent);
    await callback({ event: 'installed', sha256, agent_fingerprint: agent.fingerprint });

    const task = await anneal.settle(taskId, 300_000);

    expect(task).toMatchObject({ status: 'succeeded', progress: { total: 2, active: 2 } });
    const installed = await getNode(name);
    expect(installed).toMatchObject({ state: 'active', deploy: { status: 'succeeded', image: 'tiny' } });
    const rejoined = installed.deploy.phases.find((p: { phase: string }) => p.phase === 'rejoined');
    const runs = readRuns(log);
    expect(runs.map((r) => [r.what, r.host, r.failed])).toEqual([['seed-app', name, false]]);
    expect(runs[0]!.start).toBeGreaterThanOrEqual(Date.parse(rejoined.at) - 1_000);
    expect(await anneal.states(d)).toEqual({ [`os-install@${name}`]: 'active', [`seed-app@${name}`]: 'active' });
  });
});
