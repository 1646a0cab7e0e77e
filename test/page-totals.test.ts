import knexFactory, { type Knex } from 'knex';
import { applyMigrations } from '../src/db/migrations';
import { pageNodes } from '../src/db/nodes-repo';
import { keysetPage } from '../src/db/page';
import { createTestDatabase } from './support/test-database';

/**
 * A page's total in as few round trips as the filter allows (src/db/page.ts): the planner's estimate of a
 * filter is remembered for a few seconds, a small filter is counted beside the page's SELECT, a large one
 * is the remembered estimate. The answers are those of asking the planner on every page.
 */

let knex: Knex;
let database: { url: string; drop(): Promise<void> };

beforeAll(async () => {
  database = await createTestDatabase();
  knex = knexFactory({ client: 'pg', connection: database.url, pool: { min: 0, max: 4 } });
  await applyMigrations(knex);
}, 60_000);
afterAll(async () => {
  await knex?.destroy();
  await database?.drop();
});

const insertNodes = (prefix: string, count: number, state: string) =>
  knex.batchInsert(
    'nodes',
    Array.from({ length: count }, (_, i) => ({ hostname: `${prefix}${String(i).padStart(5, '0')}.test`, state })),
    1000,
  );

/** The statements `run` sends through this knex. */
async function statementsOf<T>(run: () => Promise<T>): Promise<{ result: T; sql: string[] }> {
  const sql: string[] = [];
  const listener = (q: { sql: string }) => sql.push(q.sql);
  knex.on('query', listener);
  try {
    return { result: await run(), sql };
  } finally {
    knex.removeListener('query', listener);
  }
}

/** A keyset page of nodes in `state` by hostname, with a threshold small enough for a test to cross. */
const pageOf = (state: string, exactBelow: number, after?: string) =>
  keysetPage<{ hostname: string }, string>(knex, () => knex('nodes').where({ state }), { limit: 10, after }, {
    after: (query, hostname) => query.where('hostname', '>', hostname),
    order: (query) => query.orderBy('hostname'),
    keyOf: (row) => row.hostname,
    exactBelow,
  });

test('a small filter, once estimated, is counted beside the page SELECT, exactly, as rows come and go', async () => {
  await insertNodes('small', 25, 'failed');

  const first = await statementsOf(() => pageNodes(knex, { states: ['failed'] }, { limit: 10 }));
  const second = await statementsOf(() => pageNodes(knex, { states: ['failed'] }, { limit: 10, after: first.result.next! }));
  await insertNodes('smaller', 3, 'failed');
  const third = await statementsOf(() => pageNodes(knex, { states: ['failed'] }, { limit: 10, after: second.result.next! }));

  expect(first.result.total).toEqual({ count: 25, estimated: false });
  expect(second.sql).toHaveLength(2);
  expect(second.sql.filter((q) => /^explain/i.test(q))).toEqual([]);
  expect(second.result.total).toEqual({ count: 25, estimated: false });
  expect(second.result.rows.map((n) => n.hostname)).toEqual(Array.from({ length: 10 }, (_, i) => `small${String(i + 10).padStart(5, '0')}.test`));
  expect(third.result.total).toEqual({ count: 28, estimated: false });
  expect(third.result.rows).toHaveLength(8);
  expect(third.result.next).toBeNull();
});

test('an empty page past the end still reports the exact total', async () => {
  await insertNodes('end', 4, 'maintenance');
  await pageNodes(knex, { states: ['maintenance'] }, { limit: 10 });

  const past = await pageNodes(knex, { states: ['maintenance'] }, { limit: 10, after: 'zzz' });

  expect(past).toEqual({ rows: [], next: null, total: { count: 4, estimated: false } });
});

test('a large filter, once estimated, is the page SELECT alone, its total the remembered estimate', async () => {
  await insertNodes('large', 300, 'commissioned');
  await knex.raw('analyze nodes');

  const first = await statementsOf(() => pageOf('commissioned', 100));
  const second = await statementsOf(() => pageOf('commissioned', 100, first.result.next!));

  expect(first.result.total.estimated).toBe(true);
  expect(first.result.total.count).toBeGreaterThanOrEqual(100);
  expect(second.sql).toHaveLength(1);
  expect(second.sql[0]).not.toMatch(/count\(|explain/i);
  expect(second.result.total).toEqual(first.result.total);
});

test('a filter remembered as small that has grown past the threshold is estimated, as the planner decides', async () => {
  await insertNodes('grow', 20, 'decommissioned');
  const before = await pageOf('decommissioned', 100);
  await insertNodes('grown', 400, 'decommissioned');
  await knex.raw('analyze nodes');

  const after = await pageOf('decommissioned', 100);

  expect(before.total).toEqual({ count: 20, estimated: false });
  expect(after.total.estimated).toBe(true);
  expect(Math.abs(after.total.count - 420)).toBeLessThan(420 * 0.2);
});
