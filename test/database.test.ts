import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openDatabase, type Database } from '../src/db/database';
import { listNodeEvents } from '../src/db/events-repo';
import { getNode, recordAnnouncement } from '../src/db/nodes-repo';
import { getTask } from '../src/db/tasks-repo';
import { applyTransition } from '../src/db/transitions-repo';
import { createTestDatabase, postgresAvailable } from './support/test-database';

/** A node as an agent would announce it; override what a test cares about. */
function makeAnnouncement(overrides: Partial<Parameters<typeof recordAnnouncement>[1]> = {}) {
  return {
    hostname: 'db-node.test',
    fingerprint: 'SHA256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',
    publicKey: '-----BEGIN PUBLIC KEY-----\nkey-a\n-----END PUBLIC KEY-----\n',
    address: 'https://127.0.0.5:4000',
    ...overrides,
  };
}

const backends: [string, () => Promise<{ db: Database; cleanup(): Promise<void> }>][] = [
  [
    'embedded PGlite',
    async () => {
      const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'nl-pglite-'));
      const db = await openDatabase({ dataDir });
      return { db, cleanup: async () => fs.rmSync(dataDir, { recursive: true, force: true }) };
    },
  ],
  [
    'PostgreSQL server',
    async () => {
      if (!(await postgresAvailable())) throw new Error('PostgreSQL at 127.0.0.1:5432 is required for this suite');
      const database = await createTestDatabase();
      const db = await openDatabase({ databaseUrl: database.url, dataDir: os.tmpdir() });
      return { db, cleanup: () => database.drop() };
    },
  ],
];

describe.each(backends)('inventory on %s', (_name, open) => {
  let db: Database;
  let cleanup: () => Promise<void>;
  beforeAll(async () => {
    ({ db, cleanup } = await open());
  });
  afterAll(async () => {
    await db.close();
    await cleanup();
  });

  test('migrations are idempotent: applying them again changes nothing', async () => {
    const { applyMigrations } = await import('../src/db/migrations');
    await expect(applyMigrations(db.knex)).resolves.toBeUndefined();
  });

  test('a first announcement creates an unmanaged node and its first event', async () => {
    const { node, isNew } = await recordAnnouncement(db.knex, makeAnnouncement({ hostname: 'first.test' }));
    expect(isNew).toBe(true);
    expect(node.state).toBe('unmanaged');
    const events = await listNodeEvents(db.knex, 'first.test');
    expect(events).toMatchObject([{ fromState: null, toState: 'unmanaged', event: 'announce' }]);
  });

  test('before acceptance a second key is a claim beside the first, never a replacement; after it, a new key is refused', async () => {
    const host = 'rekey.test';
    const other = 'SHA256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb';
    const first = await recordAnnouncement(db.knex, makeAnnouncement({ hostname: host }));
    const claimed = await recordAnnouncement(db.knex, makeAnnouncement({ hostname: host, fingerprint: other, address: 'https://127.0.0.99:9443' }));
    expect(claimed.node).toMatchObject({ fingerprint: first.node.fingerprint, address: first.node.address });

    // The operator's fingerprint picks the claim: the node takes that key and its address.
    await applyTransition(db.knex, { hostname: host, event: 'accept', cause: 'test', transitionId: 'rekey-accept', requireFingerprint: other });
    expect(await getNode(db.knex, host)).toMatchObject({ fingerprint: other, address: 'https://127.0.0.99:9443' });
    await expect(recordAnnouncement(db.knex, makeAnnouncement({ hostname: host }))).rejects.toMatchObject({ status: 409 });
    expect((await getNode(db.knex, host))!.fingerprint).toBe(other);
  });

  test('heartbeats racing the accept of their node all succeed, and the node ends accepted with its key', async () => {
    // Announce and accept lock the node's row and its claims; any order but one deadlocks under load.
    for (let round = 0; round < 15; round++) {
      const host = `race-${round}.test`;
      await recordAnnouncement(db.knex, makeAnnouncement({ hostname: host }));
      const heartbeats = Array.from({ length: 8 }, () => recordAnnouncement(db.knex, makeAnnouncement({ hostname: host })));
      const accept = applyTransition(db.knex, {
        hostname: host,
        event: 'accept',
        cause: 'test',
        transitionId: `race-accept-${round}`,
        requireFingerprint: makeAnnouncement().fingerprint,
      });
      const outcomes = await Promise.allSettled([accept, ...heartbeats]);
      expect(outcomes.filter((o) => o.status === 'rejected').map((o) => String((o as PromiseRejectedResult).reason))).toEqual([]);
      expect(await getNode(db.knex, host)).toMatchObject({ state: 'initializing', fingerprint: makeAnnouncement().fingerprint });
    }
  });

  test('a transition the table does not allow is refused and writes nothing', async () => {
    const host = 'refused.test';
    await recordAnnouncement(db.knex, makeAnnouncement({ hostname: host }));
    await expect(
      applyTransition(db.knex, { hostname: host, event: 'reinitialize', cause: 'test', transitionId: 'refused-1' }),
    ).rejects.toMatchObject({ status: 409, details: { state: 'unmanaged', allowed: ['accept'] } });
    expect((await getNode(db.knex, host))!.state).toBe('unmanaged');
    expect(await listNodeEvents(db.knex, host)).toHaveLength(1);
  });

  test('accept re-checks the fingerprint inside the transaction', async () => {
    const host = 'pinned.test';
    await recordAnnouncement(db.knex, makeAnnouncement({ hostname: host }));
    await expect(
      applyTransition(db.knex, { hostname: host, event: 'accept', cause: 'test', transitionId: 'pinned-1', requireFingerprint: 'SHA256:other' }),
    ).rejects.toMatchObject({ status: 422 });
    expect((await getNode(db.knex, host))!.state).toBe('unmanaged');
  });

  test('a transition writes state, event and task together, and a retry with the same id is a no-op', async () => {
    const host = 'retry.test';
    const taskId = '11111111-1111-4111-8111-111111111111';
    await recordAnnouncement(db.knex, makeAnnouncement({ hostname: host }));
    const request = { hostname: host, event: 'accept' as const, cause: 'test', transitionId: 'retry-1', taskId, startsTask: { kind: 'accept' } };

    const first = await applyTransition(db.knex, request);
    const again = await applyTransition(db.knex, request);

    expect(first).toEqual({ from: 'unmanaged', to: 'initializing' });
    expect(again).toEqual(first);
    expect((await getNode(db.knex, host))!).toMatchObject({ state: 'initializing', acceptedAt: expect.any(Date) });
    expect(await listNodeEvents(db.knex, host)).toHaveLength(2);
    expect(await getTask(db.knex, taskId)).toMatchObject({ status: 'running', kind: 'accept', hostname: host });

    await applyTransition(db.knex, {
      hostname: host,
      event: 'initialization_failed',
      cause: 'test',
      transitionId: 'retry-2',
      taskId,
      endsTask: { status: 'failed', error: 'ping: down' },
      lastError: 'ping: down',
    });
    expect(await getTask(db.knex, taskId)).toMatchObject({ status: 'failed', error: 'ping: down', finishedAt: expect.any(Date) });
    expect((await getNode(db.knex, host))!).toMatchObject({ state: 'failed', lastError: 'ping: down' });
  });
});

test('the embedded database keeps its data across a restart', async () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'nl-pglite-'));
  const first = await openDatabase({ dataDir });
  await recordAnnouncement(first.knex, makeAnnouncement({ hostname: 'kept.test' }));
  await first.close();

  const second = await openDatabase({ dataDir });
  expect((await getNode(second.knex, 'kept.test'))?.state).toBe('unmanaged');
  await second.close();
  fs.rmSync(dataDir, { recursive: true, force: true });
});
