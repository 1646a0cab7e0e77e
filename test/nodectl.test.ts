import type { Fleet } from '../src/fleet/simulator';
import { startActiveFleet } from './support/fleet';
import { nodeState, startTestAgent, startTestService, type TestAgent, type TestService } from './support/harness';
import { nodectl as runNodectl } from './support/nodectl';
import { waitFor } from './support/wait-for';

let ts: TestService;
let fleet: Fleet;
let newcomer: TestAgent;

beforeAll(async () => {
  ts = await startTestService();
  fleet = await startActiveFleet(ts, 5, 'cli');
  newcomer = await startTestAgent(ts, ts.hostname('newcomer'));
  await waitFor(() => nodeState(ts, newcomer.hostname), (s) => s === 'unmanaged', { what: 'the newcomer to announce' });
}, 120_000);
afterAll(async () => {
  await newcomer?.stop();
  await fleet?.stop();
  await ts?.stop();
});

const nodectl = (args: string[], env: Record<string, string> = {}) => runNodectl(ts, args, env);

test('unmanaged, then accept --wait takes a node to active', async () => {
  const listed = await nodectl(['nodes', 'unmanaged']);
  expect(listed.stdout).toContain(newcomer.hostname);
  expect(listed.stdout).toContain(newcomer.fingerprint);

  const accepted = await nodectl(['nodes', 'accept', newcomer.hostname, '--fingerprint', newcomer.fingerprint, '--wait']);

  expect(accepted).toMatchObject({ code: 0 });
  expect(accepted.stdout).toMatch(/accepted: task [0-9a-f-]{36} succeeded/);
  expect(await nodeState(ts, newcomer.hostname)).toBe('active');
});

test('commission, maintenance and decommission of a mixed list, with progress and a per-node table', async () => {
  const [a, b, c, d, e] = fleet.hostnames as [string, string, string, string, string];

  const commissioned = await nodectl(['nodes', 'commission', '--extra-vars', '{"role":"compute"}', a, b, c]);
  expect(commissioned.code).toBe(0);
  expect(commissioned.stderr).toMatch(/\[#{30}\] 3\/3 done/);
  for (const n of [a, b, c]) expect(commissioned.stdout).toMatch(new RegExp(`${n}\\s+succeeded`));
  expect(commissioned.stdout).toContain('commission succeeded: 3 succeeded, 0 failed');

  expect((await nodectl(['nodes', 'maintenance', a, d])).code).toBe(0);
  fleet.failHook(e, 'decommission', 'wipe failed');
  const decommissioned = await nodectl(['nodes', 'decommission', b, d, e]);
  // Best effort: every node is decommissioned, and the one whose cleanup failed makes the exit status 1.
  expect(decommissioned.code).toBe(1);
  expect(decommissioned.stdout).toMatch(new RegExp(`${e}\\s+succeeded\\s+decommission hook exited 1: wipe failed`));

  const states = JSON.parse((await nodectl(['nodes', 'get', '--json', a, b, c, d, e, 'ghost.test'])).stdout);
  expect(Object.fromEntries(states.map((n: { hostname: string; state: string }) => [n.hostname, n.state]))).toEqual({
    [a]: 'maintenance',
    [b]: 'decommissioned',
    [c]: 'commissioned',
    [d]: 'decommissioned',
    [e]: 'decommissioned',
  });
});

test('unknown names are refused with every offender named, exit status 1, and nothing started', async () => {
  const tasksBefore = (await ts.api.get('/api/v1/tasks')).body.length;

  const refused = await nodectl(['nodes', 'commission', fleet.hostnames[2]!, 'nobody-1.test', 'nobody-2.test']);

  expect(refused.code).toBe(1);
  expect(refused.stderr).toContain('404 request_refused');
  expect(refused.stderr).toContain('nobody-1.test: unknown node');
  expect(refused.stderr).toContain('nobody-2.test: unknown node');
  expect((await ts.api.get('/api/v1/tasks')).body.length).toBe(tasksBefore);
});

test('usage mistakes exit 2', async () => {
  expect((await nodectl(['nodes', 'accept', 'x'])).code).toBe(2);
  expect((await nodectl(['nodes', 'commission', '--extra-vars', '{oops', 'x'])).code).toBe(2);
  expect((await nodectl(['frobnicate'])).code).toBe(2);
});

test('on the service machine, the URL and token come from DATA_DIR; tasks get shows a task', async () => {
  const latest = (await ts.api.get('/api/v1/tasks?limit=1')).body[0];

  const shown = await nodectl(['tasks', 'get', latest.id], { DATA_DIR: ts.dataDir });

  expect(shown.stdout).toContain(latest.id);
  expect(shown.stdout).toContain(latest.kind);
});
