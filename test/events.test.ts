import type { Fleet } from '../src/fleet/simulator';
import { startActiveFleet, waitForTask } from './support/fleet';
import { nodeState, startTestService, type TestService } from './support/harness';
import { waitFor } from './support/wait-for';

let ts: TestService;
let fleet: Fleet;
let nodes: string[];

beforeAll(async () => {
  ts = await startTestService({ DISAPPEAR_AFTER: '1500ms' });
  fleet = await startActiveFleet(ts, 3, 'events');
  nodes = fleet.hostnames;
}, 120_000);
afterAll(async () => {
  await fleet?.stop();
  await ts?.stop();
});

type Event = { id: number; type: string; nodes: string[]; at: string };
const events = async (query = '') => (await ts.api.get(`/api/v1/events${query}`)).body as Event[];
const node = async (hostname: string) => (await ts.api.get(`/api/v1/nodes/${hostname}`)).body;

test('announced nodes are discovered, each once, by events that list the nodes they concern', async () => {
  const found = await waitFor(() => events('?type=discovered'), (list) => nodes.every((n) => list.some((e) => e.nodes.includes(n))), {
    what: 'the discovered events',
  });
  for (const n of nodes) expect(found.filter((e) => e.nodes.includes(n))).toHaveLength(1);
  // The monitor batches: one sweep is one event, however many nodes it found.
  expect(found.flatMap((e) => e.nodes).filter((n) => nodes.includes(n)).sort()).toEqual([...nodes].sort());
});

test('a silent node disappears and is discovered again when heard; its lifecycle state does not change', async () => {
  const [gone, stays] = nodes as [string, string];
  await fleet.disappear(gone);

  const disappeared = await waitFor(() => events(`?type=disappeared&node=${gone}`), (list) => list.length === 1, { what: 'disappeared' });
  expect(disappeared[0]!.nodes).toEqual([gone]);
  expect(await node(gone)).toMatchObject({ reachable: false, state: 'active' });
  expect((await node(stays)).reachable).toBe(true);

  await fleet.reappear(gone);
  const back = await waitFor(() => events(`?node=${gone}`), (list) => list[0]?.type === 'discovered' && list.length >= 3, { what: 'discovered again' });
  expect(back.map((e) => e.type)).toEqual(['discovered', 'disappeared', 'discovered']);
  expect(await node(gone)).toMatchObject({ reachable: true, state: 'active' });
  expect((await node(gone)).reachability_events.map((e: { type: string }) => e.type)).toEqual(['discovered', 'disappeared', 'discovered']);
});

test('events are paginated, newest first, and a bad filter is refused', async () => {
  const all = await events();
  const page = await events('?limit=1&offset=1');
  expect(page).toEqual([all[1]]);
  const bad = await ts.api.get('/api/v1/events?type=exploded');
  expect(bad.status).toBe(400);
  expect(bad.body.error.fields[0].field).toBe('type');
});

test('an operation on a node that disappeared waits for it within its timeout', async () => {
  const target = nodes[2]!;
  await fleet.disappear(target);
  const res = await ts.api.post('/api/v1/maintenance/nodes', { nodes: [target] });
  expect(res.status).toBe(202);
  await waitFor(() => node(target), (n) => n.state === 'entering_maintenance', { what: 'the operation to start' });

  await fleet.reappear(target);

  expect((await waitForTask(ts, res.body.task_id)).body).toMatchObject({ status: 'succeeded', error: null });
  expect(await nodeState(ts, target)).toBe('maintenance');
});
