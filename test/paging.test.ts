import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import knexFactory, { type Knex } from 'knex';
import { openDatabase, type Database } from '../src/db/database';
import { pageNodes } from '../src/db/nodes-repo';
import { totalOf } from '../src/db/page';
import type { HttpResponse } from './support/http-client';
import { startTestService, type TestService } from './support/harness';
import { nodectl } from './support/nodectl';
import { createTestDatabase } from './support/test-database';

/**
 * The five lists page by a cursor: rows are inserted straight into the service's database (hundreds
 * of them, in a few statements), then read back over HTTP page by page, following Link rel="next".
 */

let ts: TestService;
let knex: Knex;
let database: { url: string; drop(): Promise<void> };

const ACTIVE = 1_050;
const FAILED = 40;
const UNMANAGED = 60;
const TASKS = 260;
const EVENTS = 250;

const host = (label: string) => ts.hostname(label);
const fingerprintOf = (text: string) => `SHA256:${createHash('sha256').update(text).digest('base64').replace(/=+$/, '')}`;
const uuid = (i: number) => `00000000-0000-4000-8000-${i.toString(16).padStart(12, '0')}`;

async function seed(): Promise<void> {
  const nodes = [
    ...Array.from({ length: ACTIVE }, (_, i) => ({ hostname: host(`a${i}`), state: 'active' })),
    ...Array.from({ length: FAILED }, (_, i) => ({ hostname: host(`f${i}`), state: 'failed' })),
    ...Array.from({ length: UNMANAGED }, (_, i) => ({ hostname: host(`u${i}`), state: 'unmanaged' })),
  ];
  await knex.batchInsert('nodes', nodes, 500);
  // One statement: every claim has the same first_seen_at, so the fingerprint alone orders a host's claims;
  // every tenth host has a second key.
  const claims = Array.from({ length: UNMANAGED }, (_, i) => [
    { hostname: host(`u${i}`), fingerprint: fingerprintOf(`u${i}`), public_key: 'k', address: 'https://127.0.0.9:1', status: 'pending' },
    ...(i % 10 === 0 ? [{ hostname: host(`u${i}`), fingerprint: fingerprintOf(`u${i}-other`), public_key: 'k', address: 'https://127.0.0.9:2', status: 'pending' }] : []),
  ]).flat();
  await knex('node_claims').insert(claims);
  // Half the tasks share one created_at (the id breaks the tie), half are a microsecond apart.
  const statuses = ['queued', 'running', 'succeeded', 'failed'];
  const tasks = Array.from({ length: TASKS }, (_, i) => ({
    id: uuid(i + 1),
    kind: 'commission',
    hostname: host(`a${i % 7}`),
    status: statuses[i % 4],
    created_at: i % 2 === 0 ? knex.raw("'2026-01-01T00:00:00.000000Z'::timestamptz") : knex.raw(`'2026-01-01T00:00:00Z'::timestamptz + interval '${i} microseconds'`),
  }));
  await knex.batchInsert('tasks', tasks, 500);
  const types = ['discovered', 'disappeared', 'power_fault'];
  await knex.batchInsert(
    'cluster_events',
    Array.from({ length: EVENTS }, (_, i) => ({ type: types[i % 3], nodes: [host(`a${i % 11}`)] })),
    500,
  );
}

beforeAll(async () => {
  database = await createTestDatabase();
  ts = await startTestService({ DATABASE_URL: database.url });
  knex = knexFactory({ client: 'pg', connection: database.url, pool: { min: 0, max: 2 } });
  await seed();
}, 120_000);
afterAll(async () => {
  await knex?.destroy();
  await ts?.stop();
  await database?.drop();
});

interface Walk {
  rows: any[];
  pages: HttpResponse<any[]>[];
}

/** Follows Link rel="next" from the first page to the last; `between` runs after each page that has a next. */
async function walk(first: string, between: (page: number) => Promise<void> = async () => undefined): Promise<Walk> {
  const pages: HttpResponse<any[]>[] = [];
  let next: string | null = first;
  while (next !== null) {
    const res: HttpResponse<any[]> = await ts.api.get(next);
    expect(res.status).toBe(200);
    pages.push(res);
    next = res.headers.get('link')?.match(/^<([^>]+)>; rel="next"$/)?.[1] ?? null;
    if (pages.length > 500) throw new Error(`${first}: more than 500 pages`);
    if (next !== null) await between(pages.length);
  }
  return { rows: pages.flatMap((p) => p.body), pages };
}

/** What raw SQL says each list holds, in the list's order, as the keys the test compares. */
const expected = {
  nodes: async (state?: string) =>
    (await knex('nodes').modify((q) => (state ? q.where({ state }) : q.whereNot({ state: 'unmanaged' }))).orderBy('hostname').pluck('hostname')) as string[],
  info: async () => (await knex('nodes').orderBy('hostname').pluck('hostname')) as string[],
  claims: async () =>
    (await knex('node_claims').where({ status: 'pending' }).orderBy(['hostname', 'first_seen_at', 'fingerprint']).select('hostname', 'fingerprint')).map(
      (c: { hostname: string; fingerprint: string }) => `${c.hostname} ${c.fingerprint}`,
    ),
  tasks: async (status?: string) =>
    (await knex('tasks')
      .modify((q) => (status ? q.where({ status }) : q))
      .orderBy([
        { column: 'created_at', order: 'desc' },
        { column: 'id', order: 'desc' },
      ])
      .pluck('id')) as string[],
  events: async (type?: string) => ((await knex('cluster_events').modify((q) => (type ? q.where({ type }) : q)).orderBy('id', 'desc').pluck('id')) as string[]).map(Number),
};

const keyOf = {
  node: (n: { hostname: string }) => n.hostname,
  claim: (c: { hostname: string; fingerprint: string }) => `${c.hostname} ${c.fingerprint}`,
  id: (r: { id: string | number }) => r.id,
};

describe('a walk over every page', () => {
  test.each([
    ['/api/v1/nodes?limit=100', () => expected.nodes(), keyOf.node, 100],
    ['/api/v1/nodes?state=failed&limit=7', () => expected.nodes('failed'), keyOf.node, 7],
    ['/api/v1/info/nodes?limit=250', () => expected.info(), keyOf.node, 250],
    ['/api/v1/unmanaged_nodes?limit=9', () => expected.claims(), keyOf.claim, 9],
    ['/api/v1/tasks?limit=25', () => expected.tasks(), keyOf.id, 25],
    ['/api/v1/tasks?status=failed&limit=10', () => expected.tasks('failed'), keyOf.id, 10],
    ['/api/v1/events?limit=30', () => expected.events(), keyOf.id, 30],
    ['/api/v1/events?type=power_fault&limit=13', () => expected.events('power_fault'), keyOf.id, 13],
  ] as const)('%s returns every row once, in order, with the exact total', async (first, truth, key, limit) => {
    const want = await truth();
    expect(want.length).toBeGreaterThan(limit);

    const { rows, pages } = await walk(first);

    expect(rows.map(key as (r: any) => unknown)).toEqual(want);
    expect(pages).toHaveLength(Math.ceil(want.length / limit));
    for (const page of pages) {
      expect(page.body.length).toBeLessThanOrEqual(limit);
      expect(page.headers.get('x-total-count')).toBe(String(want.length));
      expect(page.headers.get('x-total-count-estimated')).toBeNull();
    }
    const last = pages[pages.length - 1]!;
    expect(last.headers.get('link')).toBeNull();
    expect(last.headers.get('x-next-cursor')).toBeNull();
  });

  test('the next link keeps the filters and the limit, and its cursor is X-Next-Cursor', async () => {
    const res = await ts.api.get('/api/v1/nodes?state=active&limit=3');

    const cursor = res.headers.get('x-next-cursor');
    expect(cursor).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(res.headers.get('link')).toBe(`</api/v1/nodes?state=active&limit=3&cursor=${cursor}>; rel="next"`);
    const second = await ts.api.get(`/api/v1/nodes?state=active&limit=3&cursor=${cursor}`);
    expect(second.body.map(keyOf.node)).toEqual((await expected.nodes('active')).slice(3, 6));
  });

  test('a host with two keys shows both, each counting the two, wherever the page ends', async () => {
    const { rows } = await walk('/api/v1/unmanaged_nodes?limit=1');

    const contested = rows.filter((c) => c.hostname === host('u0'));
    expect(contested).toHaveLength(2);
    for (const c of contested) expect(c).toMatchObject({ claims: 2, conflict: true });
    expect(rows.find((c) => c.hostname === host('u1'))).toMatchObject({ claims: 1, conflict: false });
  });

  test('?hostname= on unmanaged_nodes lists that host only', async () => {
    const res = await ts.api.get(`/api/v1/unmanaged_nodes?hostname=${host('u10')}`);

    expect(res.body.map(keyOf.claim)).toEqual([fingerprintOf('u10'), fingerprintOf('u10-other')].sort().map((f) => `${host('u10')} ${f}`));
    expect(res.headers.get('x-total-count')).toBe('2');
  });

  test('offset still pages /tasks and /events, and its next link continues by cursor', async () => {
    const want = await expected.tasks();
    const res = await ts.api.get('/api/v1/tasks?limit=5&offset=10');

    expect(res.body.map(keyOf.id)).toEqual(want.slice(10, 15));
    const next = await ts.api.get(res.headers.get('link')!.match(/^<([^>]+)>/)![1]!);
    expect(next.body.map(keyOf.id)).toEqual(want.slice(15, 20));
  });
});

describe('rows inserted while a client walks the pages', () => {
  test('nodes: every node that existed is listed exactly once, in order', async () => {
    const before = await expected.nodes('active');
    let made = 0;
    // Each round adds nodes before the cursor, after it, and at the very end of the order.
    const insert = async () => {
      made++;
      await knex('nodes').insert(['a0-', 'a5', 'zz'].map((label) => ({ hostname: host(`${label}new${made}`), state: 'active' })));
    };

    const { rows } = await walk('/api/v1/nodes?state=active&limit=40', insert);

    const walked = rows.map(keyOf.node);
    expect(new Set(walked).size).toBe(walked.length);
    expect(walked).toEqual(expect.arrayContaining(before));
    const now = await expected.nodes('active');
    expect(walked).toEqual(now.filter((h) => walked.includes(h)));
    // Whatever was inserted past the cursor is seen on a later page: the last one made is at the end.
    expect(walked[walked.length - 1]).toBe(now[now.length - 1]);
  });

  test('tasks: new tasks start at the front and never push a shown task onto the next page', async () => {
    const before = await expected.tasks();
    let made = 0;
    const insert = async () => {
      made++;
      await knex('tasks').insert({ id: uuid(100_000 + made), kind: 'accept', hostname: null, status: 'running' });
    };

    const { rows } = await walk('/api/v1/tasks?limit=20', insert);

    const walked = rows.map(keyOf.id);
    expect(walked).toEqual(before);
    expect(made).toBeGreaterThan(5);
  });
});

describe('bad paging input', () => {
  const refused = (res: HttpResponse, field: string) => {
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('validation_failed');
    expect(res.body.error.fields.map((f: { field: string }) => f.field)).toEqual([field]);
  };
  const LISTS = ['/api/v1/nodes', '/api/v1/info/nodes', '/api/v1/unmanaged_nodes', '/api/v1/tasks', '/api/v1/events'];
  const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

  test.each(LISTS)('%s refuses a limit of 0, over 1000, or not a number, naming limit', async (list) => {
    for (const limit of ['0', '1001', 'ten', '-5', '2.5']) refused(await ts.api.get(`${list}?limit=${limit}`), 'limit');
  });

  test.each(LISTS)('%s refuses a malformed or foreign cursor, naming cursor', async (list) => {
    const foreign = {
      '/api/v1/nodes': b64([1]),
      '/api/v1/info/nodes': b64(42),
      '/api/v1/unmanaged_nodes': b64('node.test'),
      '/api/v1/tasks': b64('node.test'),
      '/api/v1/events': b64(['2026-01-01T00:00:00.000000Z', uuid(1)]),
    }[list]!;
    for (const cursor of ['%%%', 'bm90IGpzb24', foreign, b64('bad\u0000host'), b64(['x', '2026-01-01', 'y']), '']) {
      refused(await ts.api.get(`${list}?cursor=${encodeURIComponent(cursor)}`), 'cursor');
    }
  });

  test('a cursor and an offset together are refused, naming offset', async () => {
    const cursor = (await ts.api.get('/api/v1/tasks?limit=1')).headers.get('x-next-cursor');
    refused(await ts.api.get(`/api/v1/tasks?cursor=${cursor}&offset=3`), 'offset');
  });
});

describe('nodectl', () => {
  test('nodes get lists every node across pages (more than one page of 1000)', async () => {
    const res = await nodectl(ts, ['nodes', 'get', '--json']);

    expect(res.code).toBe(0);
    const listed = JSON.parse(res.stdout).map(keyOf.node);
    const all = await expected.info();
    expect(all.length).toBeGreaterThan(1000);
    expect(listed).toEqual(all);
  });

  test('--limit stops after that many entries; a bad --limit is a usage error', async () => {
    const five = await nodectl(ts, ['tasks', 'list', '--json', '--limit', '5']);
    expect(JSON.parse(five.stdout).map(keyOf.id)).toEqual((await expected.tasks()).slice(0, 5));

    expect((await nodectl(ts, ['nodes', 'unmanaged', '--limit', '0'])).code).toBe(2);
  });

  test('nodes unmanaged and events list show every entry', async () => {
    const claims = await nodectl(ts, ['nodes', 'unmanaged', '--json']);
    expect(JSON.parse(claims.stdout).map(keyOf.claim)).toEqual(await expected.claims());
    const events = await nodectl(ts, ['events', 'list', '--json']);
    expect(JSON.parse(events.stdout).map(keyOf.id)).toEqual(await expected.events());
  });
});

describe('totals of large lists', () => {
  test('above 10,000 matching rows the total is the estimate, marked so, and near the count', async () => {
    await knex.raw("insert into cluster_events (type, nodes) select 'discovered', array['bulk.test'] from generate_series(1, 12000)");
    await knex.raw('analyze cluster_events');
    const count = Number((await knex('cluster_events').count({ n: '*' }))[0]!.n);

    const res = await ts.api.get('/api/v1/events?limit=10');

    expect(res.headers.get('x-total-count-estimated')).toBe('true');
    expect(Math.abs(Number(res.headers.get('x-total-count')) - count)).toBeLessThan(count * 0.2);
    // A narrow filter stays exact.
    const narrow = await ts.api.get('/api/v1/events?type=power_fault&limit=10');
    expect(narrow.headers.get('x-total-count')).toBe(String((await expected.events('power_fault')).length));
    expect(narrow.headers.get('x-total-count-estimated')).toBeNull();
  });
});

describe('on embedded PGlite (npm start)', () => {
  let db: Database;
  let dataDir: string;
  beforeAll(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'nl-paging-'));
    db = await openDatabase({ dataDir });
    await db.knex.batchInsert(
      'nodes',
      Array.from({ length: 300 }, (_, i) => ({ hostname: `p${String(i).padStart(3, '0')}.test`, state: i % 3 === 0 ? 'failed' : 'active' })),
      300,
    );
  }, 60_000);
  afterAll(async () => {
    await db?.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  test('pages walk every node once and the planner estimate is read', async () => {
    const seen: string[] = [];
    let after: string | undefined;
    do {
      const page = await pageNodes(db.knex, { states: ['active'] }, { limit: 33, after });
      expect(page.total).toEqual({ count: 200, estimated: false });
      seen.push(...page.rows.map((n) => n.hostname));
      after = page.next ?? undefined;
    } while (after !== undefined);
    expect(seen).toEqual(Array.from({ length: 300 }, (_, i) => `p${String(i).padStart(3, '0')}.test`).filter((_, i) => i % 3 !== 0));

    const estimate = await totalOf(db.knex, db.knex('nodes'), 1);
    expect(estimate.estimated).toBe(true);
    expect(estimate.count).toBeGreaterThan(0);
  });
});
