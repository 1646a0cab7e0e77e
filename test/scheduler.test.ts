import { randomUUID } from 'node:crypto';
import os from 'node:os';
import { openDatabase, type Database } from '../src/db/database';
import { recordAnnouncement } from '../src/db/nodes-repo';
import {
  claimNextOperation,
  finishOperation,
  markWaiting,
  nextWave,
  releaseSlot,
  requestSlot,
  submitBulk,
  taskProgress,
} from '../src/db/operations-repo';
import type { NodeState } from '../src/domain/states';
import { createTestDatabase } from './support/test-database';

const CAPS = { general: 2, install: 1 };
let db: Database;
let drop: () => Promise<void>;

beforeAll(async () => {
  const database = await createTestDatabase();
  drop = database.drop;
  db = await openDatabase({ databaseUrl: database.url, dataDir: os.tmpdir() });
  await db.knex('images').insert({ name: 'sched-image', kernel: '/k', initrd: '/i', disk: '/d', sha256: '0'.repeat(64), size: 1 });
});
afterAll(async () => {
  await db.close();
  await drop();
});

let counter = 0;
/** A node in the inventory in the given state. */
async function makeNode(state: NodeState = 'active'): Promise<string> {
  const hostname = `sched-${++counter}.test`;
  await recordAnnouncement(db.knex, { hostname, fingerprint: 'SHA256:x', publicKey: 'k', address: 'https://127.0.0.1:1' });
  // What an install needs besides its state: a BMC and a MAC.
  await db.knex('nodes').where({ hostname }).update({ state, driver: 'ipmi' });
  await db.knex('node_ports').insert({ hostname, address: `52:54:00:5c:${String(Math.floor(counter / 256)).padStart(2, '0')}:${(counter % 256).toString(16).padStart(2, '0')}` });
  return hostname;
}

function submit(kind: 'commission' | 'decommission' | 'maintenance' | 'deploy', hostnames: string[]) {
  const taskId = randomUUID();
  return submitBulk(db.knex, { taskId, kind, hostnames, extraVars: {}, ...(kind === 'deploy' ? { image: 'sched-image' } : {}) }).then(() => taskId);
}

describe('validation of a whole request', () => {
  test('unknown nodes and forbidden states are all named, with 404 when any is unknown, and nothing is queued', async () => {
    const ok = await makeNode('active');
    const failed = await makeNode('failed');
    const before = await db.knex('operations').count({ n: '*' }).first();

    const attempt = submit('commission', [ok, 'ghost.test', failed]);

    await expect(attempt).rejects.toMatchObject({
      status: 404,
      offenders: [
        { node: 'ghost.test', problem: 'unknown node' },
        { node: failed, problem: 'is failed', state: 'failed', allowed: ['reinitialize'] },
      ],
    });
    expect(await db.knex('operations').count({ n: '*' }).first()).toEqual(before);
  });

  test('a node is judged by the state its queued operations will leave it in', async () => {
    const node = await makeNode('active');
    await submit('commission', [node]);

    await expect(submit('commission', [node])).rejects.toMatchObject({
      status: 409,
      offenders: [{ node, problem: 'will be commissioned after its queued commission', state: 'commissioned' }],
    });
    await expect(submit('decommission', [node])).resolves.toEqual(expect.any(String));
  });
});

describe('one operation per node, in submission order', () => {
  test('a node gets its second operation only after the first is finished', async () => {
    const node = await makeNode('active');
    const first = await submit('maintenance', [node]);
    const second = await submit('decommission', [node]);

    const claimed = await claimNextOperation(db.knex, node);
    expect(claimed).toMatchObject({ taskId: first, status: 'running' });
    expect(await claimNextOperation(db.knex, node)).toMatchObject({ taskId: first, id: claimed!.id });

    await finishOperation(db.knex, claimed!.id, { status: 'succeeded', error: null });
    expect(await claimNextOperation(db.knex, node)).toMatchObject({ taskId: second });
    expect((await taskProgress(db.knex, first)).succeeded).toBe(1);
  });
});

describe('the cluster-wide cap', () => {
  test('at most cap rows hold a slot; a release hands it to the longest waiting row, once', async () => {
    const nodes = [await makeNode(), await makeNode(), await makeNode(), await makeNode()];
    await submit('maintenance', nodes);
    // Slots held by earlier tests' rows would count against the cap; this test owns them all.
    await db.knex('operations').whereNotIn('hostname', nodes).update({ holds_slot: false, wants_slot_since: null });
    const ops = [];
    for (const n of nodes) ops.push((await claimNextOperation(db.knex, n))!);

    const answers = [];
    for (const op of ops) answers.push(await requestSlot(db.knex, op.id, CAPS));

    expect(answers.map((a) => a.granted)).toEqual([true, true, false, false]);
    const handed = await releaseSlot(db.knex, ops[0]!.id, CAPS);
    expect(handed).toEqual([nodes[2]]);
    expect(await releaseSlot(db.knex, ops[0]!.id, CAPS)).toEqual([nodes[2]]); // a retried release wakes the same node
    expect(await requestSlot(db.knex, ops[2]!.id, CAPS)).toEqual({ granted: true, wake: [] });
    expect((await requestSlot(db.knex, ops[3]!.id, CAPS)).granted).toBe(false);
    expect(await db.knex('operations').where({ holds_slot: true }).count({ n: '*' }).first()).toEqual({ n: '2' });
  });
});

describe('the install cap', () => {
  test('installs take slots of their own cap: they neither wait for nor block other operations', async () => {
    const installs = [await makeNode('manageable'), await makeNode('manageable')];
    const others = [await makeNode(), await makeNode()];
    await submit('deploy', installs);
    await submit('maintenance', others);
    await db.knex('operations').whereNotIn('hostname', [...installs, ...others]).update({ holds_slot: false, wants_slot_since: null });
    const [firstInstall, secondInstall] = [(await claimNextOperation(db.knex, installs[0]!))!, (await claimNextOperation(db.knex, installs[1]!))!];
    const [firstOther, secondOther] = [(await claimNextOperation(db.knex, others[0]!))!, (await claimNextOperation(db.knex, others[1]!))!];

    expect((await requestSlot(db.knex, firstInstall.id, CAPS)).granted).toBe(true);
    // The install cap is 1: the second install waits, visibly, while the other pool is untouched.
    expect((await requestSlot(db.knex, secondInstall.id, CAPS)).granted).toBe(false);
    expect((await requestSlot(db.knex, firstOther.id, CAPS)).granted).toBe(true);
    expect((await requestSlot(db.knex, secondOther.id, CAPS)).granted).toBe(true);
    // Releasing an install hands its slot to the waiting install, not to anyone else.
    expect(await releaseSlot(db.knex, firstInstall.id, CAPS)).toEqual([installs[1]]);
  });
});

describe('waves: a request wakes its nodes a few per slot at a time', () => {
  const hostnamesOf = (wave: { wake: { hostname: string }[] }) => wave.wake.map((w) => w.hostname);

  test('a woken row holds a place until it is through its step; a row queued behind its node\'s earlier work holds none', async () => {
    const [a, b, c, d, e, f] = [await makeNode(), await makeNode(), await makeNode(), await makeNode(), await makeNode(), await makeNode()];
    await submit('maintenance', [b!]); // b's commission will wait for this
    const taskId = await submit('commission', [a!, b!, c!, d!, e!, f!]);
    // Slots held by earlier tests' rows would count against the cap; this test owns them all.
    await db.knex('operations').whereNotIn('hostname', [a!, b!, c!, d!, e!, f!]).update({ holds_slot: false, wants_slot_since: null });
    const ids = new Map((await db.knex('operations').select('id', 'hostname').where({ task_id: taskId })).map((r) => [r.hostname as string, Number(r.id)]));
    const window = 3;

    const first = await nextWave(db.knex, taskId, { afterId: 0, window, stage: 'step' });
    expect(hostnamesOf(first)).toEqual([a, b, c]);
    expect(first.last).toBe(false);
    // b waits for its maintenance: its place goes to d.
    expect(hostnamesOf(await nextWave(db.knex, taskId, { afterId: ids.get(c!)!, window, stage: 'step' }))).toEqual([d]);
    expect(await nextWave(db.knex, taskId, { afterId: ids.get(d!)!, window, stage: 'step' })).toEqual({ wake: [], last: false });

    // a claims its row (its transition runs before it asks for a slot), then holds a slot: still in its
    // step, still holding its place.
    const op = (await claimNextOperation(db.knex, a!))!;
    expect(hostnamesOf(await nextWave(db.knex, taskId, { afterId: ids.get(d!)!, window, stage: 'step' }))).toEqual([]);
    expect((await requestSlot(db.knex, op.id, CAPS)).granted).toBe(true);
    expect(hostnamesOf(await nextWave(db.knex, taskId, { afterId: ids.get(d!)!, window, stage: 'step' }))).toEqual([]);
    // Through its step (waiting for the request's decision): its place goes to e, then f is the last.
    await releaseSlot(db.knex, op.id, CAPS);
    await markWaiting(db.knex, op.id, null, {});
    expect(await nextWave(db.knex, taskId, { afterId: ids.get(d!)!, window, stage: 'step' })).toEqual({ wake: [{ id: ids.get(e!), hostname: e }], last: false });
    await finishOperation(db.knex, ids.get(c!)!, { status: 'failed', error: 'x' });
    expect(await nextWave(db.knex, taskId, { afterId: ids.get(e!)!, window, stage: 'step' })).toEqual({ wake: [{ id: ids.get(f!), hostname: f }], last: true });
    // Asked again after the last wave (a retried attempt), with the window full: nothing is left, it is the end.
    expect(await nextWave(db.knex, taskId, { afterId: ids.get(f!)!, window, stage: 'step' })).toEqual({ wake: [], last: true });
  });

  test('a decision wakes the open rows, each holding its place until it finishes', async () => {
    const nodes = [await makeNode(), await makeNode(), await makeNode(), await makeNode()];
    const taskId = await submit('commission', nodes);
    const rows = await db.knex('operations').select('id', 'hostname').where({ task_id: taskId }).orderBy('id');
    for (const row of rows) await markWaiting(db.knex, Number(row.id), null, {});
    await finishOperation(db.knex, Number(rows[1].id), { status: 'failed', error: 'could not start' });

    const first = await nextWave(db.knex, taskId, { afterId: 0, window: 2, stage: 'decision' });
    expect(hostnamesOf(first)).toEqual([nodes[0], nodes[2]]); // the finished row is not woken
    const after = first.wake[1]!.id;
    expect(await nextWave(db.knex, taskId, { afterId: after, window: 2, stage: 'decision' })).toEqual({ wake: [], last: false });
    await finishOperation(db.knex, Number(rows[0].id), { status: 'succeeded', error: null });
    expect(await nextWave(db.knex, taskId, { afterId: after, window: 2, stage: 'decision' })).toEqual({ wake: [{ id: Number(rows[3].id), hostname: nodes[3] }], last: true });
  });
});

describe('a 10,000-node request', () => {
  test('is validated and queued in one transaction', async () => {
    const hostnames = Array.from({ length: 10_000 }, (_, i) => `big-${i}.test`);
    for (let i = 0; i < hostnames.length; i += 1000) {
      await db.knex('nodes').insert(
        hostnames.slice(i, i + 1000).map((hostname) => ({
          hostname,
          state: 'active',
          fingerprint: 'SHA256:x',
          public_key: 'k',
          address: 'https://127.0.0.1:1',
          announced_at: new Date(),
        })),
      );
    }

    const taskId = await submit('maintenance', hostnames);

    expect((await taskProgress(db.knex, taskId)).queued).toBe(10_000);
    const refused = submit('maintenance', [...hostnames.slice(0, 5_000), 'ghost-big.test']);
    await expect(refused).rejects.toMatchObject({ status: 404 });
    expect((await refused.catch((e) => e)).offenders).toHaveLength(5_001);
  });
});
