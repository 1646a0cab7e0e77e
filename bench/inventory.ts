/**
 * Inventory benchmark (issue #11 part 3): with 100,000 node rows in PostgreSQL, how fast the real API
 * answers one page of `GET /api/v1/nodes?state=S&limit=100`, for a common and a rare state, first page
 * and a deep one, next to the SQL the repository runs for that same page, sent through knex.
 *
 *   tsx bench/inventory.ts [--nodes 100000] [--requests 500]
 *
 * A benchmark, never asserted. Each round sends one request of every kind, one after the other, so a
 * load spike on this shared machine hits every column alike instead of one block of requests. The
 * columns between raw SQL and HTTP say where the time goes: the repository function (SQL plus row
 * mapping), plus the JSON presentation, plus Express, auth and validation over loopback HTTP.
 */
import os from 'node:os';
import path from 'node:path';
import fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import knexFactory, { type Knex } from 'knex';
import { gatherFacts } from '../src/agent/facts';
import { presentNode } from '../src/api/present';
import { loadConfig } from '../src/config';
import { applyMigrations } from '../src/db/migrations';
import { pageNodes, type NodeFilter } from '../src/db/nodes-repo';
import { ESTIMATE_FRESH_MS, EXACT_COUNT_BELOW } from '../src/db/page';
import { createTestDatabase, postgresAvailable } from '../src/dev/scratch-database';
import { freePort } from '../src/dev/free-port';
import type { NodeState } from '../src/domain/states';
import { startService } from '../src/service';
import { startDevServer } from '../src/temporal/dev-server';
import { log, machine, summary, table, writeResult, type Summary, runBenchmark, runCleanup } from './bench-support';

const { values } = parseArgs({
  options: {
    nodes: { type: 'string', default: process.env.BENCH_NODES ?? '100000' },
    requests: { type: 'string', default: '500' },
  },
});
const NODES = Number(values.nodes);
const REQUESTS = Number(values.requests);
const WARM_UP = 50;
const LIMIT = 100;
const TARGET_P99_MS = 20;
const TARGET_RATIO = 2;

/** A fleet in service: nearly everything active, a tail spread over the other states (they sum to 100). */
const STATE_SHARE: Partial<Record<NodeState, number>> = {
  active: 90,
  commissioned: 3,
  maintenance: 2,
  failed: 1,
  unmanaged: 1,
  decommissioned: 1,
  manageable: 0.5,
  initializing: 0.3,
  commissioning: 0.3,
  deploying: 0.2,
  enroll: 0.2,
  'deploy failed': 0.2,
  entering_maintenance: 0.1,
  decommissioning: 0.1,
  'adopt failed': 0.1,
};
const COMMON: NodeState = 'active';
const RARE: NodeState = 'failed';

/** A seeded generator (mulberry32): the same inventory every run. */
function seeded(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function stateDrawer(random: () => number): () => NodeState {
  const entries = Object.entries(STATE_SHARE) as [NodeState, number][];
  const total = entries.reduce((s, [, w]) => s + w, 0);
  return () => {
    let x = random() * total;
    for (const [state, w] of entries) {
      x -= w;
      if (x < 0) return state;
    }
    return entries[0]![0];
  };
}

/** 100,000 rows as an agent-announced fleet leaves them: real facts (this host's, renamed), keys, addresses. */
async function insertFleet(knex: Knex, count: number): Promise<{ perState: Record<string, number>; factsBytes: number }> {
  const random = seeded(11);
  const drawState = stateDrawer(random);
  const facts = await gatherFacts();
  const perState: Record<string, number> = {};
  const now = Date.now();
  const BATCH = 1000;
  for (let start = 0; start < count; start += BATCH) {
    const rows = [];
    for (let i = start; i < Math.min(count, start + BATCH); i++) {
      const state = drawState();
      perState[state] = (perState[state] ?? 0) + 1;
      const hostname = `rack${String(Math.floor(i / 40)).padStart(4, '0')}-node${String(i % 40).padStart(2, '0')}.dc1.example.net`;
      const address = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
      const fingerprint = `SHA256:${Buffer.from(`${hostname}-key-material-for-bench`).toString('base64').replace(/=+$/, '').slice(0, 43).padEnd(43, 'A')}`;
      const seen = new Date(now - Math.floor(random() * 30_000));
      const created = new Date(now - 86_400_000 - Math.floor(random() * 86_400_000 * 300));
      rows.push({
        hostname,
        state,
        fingerprint,
        public_key: `-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA${Buffer.from(hostname).toString('base64').slice(0, 43)}=\n-----END PUBLIC KEY-----\n`,
        address,
        facts: JSON.stringify({ ...facts, host_name: hostname, uptime_seconds: Math.floor(random() * 10_000_000) }),
        announced_at: seen,
        accepted_at: state === 'unmanaged' ? null : new Date(created.getTime() + 60_000),
        facts_at: state === 'unmanaged' ? null : new Date(created.getTime() + 120_000),
        created_at: created,
        updated_at: new Date(created.getTime() + 180_000),
        reachable: true,
        last_seen_at: seen,
      });
    }
    await knex('nodes').insert(rows);
  }
  return { perState, factsBytes: JSON.stringify(facts).length };
}

interface Captured {
  sql: string;
  bindings: unknown[];
}

/**
 * The page's SELECT as one would write it by hand (its rows only, no total), built by knex the way
 * pageNodes builds its rows query; and the statements pageNodes sends for that page once it holds the
 * filter's estimate, which is every page of a walk but one each ESTIMATE_FRESH_MS: the SELECT alone for a
 * large filter, the SELECT and the filter's COUNT side by side for a small one. Both replayed through knex.raw
 * with the same bindings.
 */
async function captureStatements(knex: Knex, filter: NodeFilter, after: string | undefined): Promise<{ select: Captured; repo: Captured[] }> {
  const rowsOnly = knex('nodes').whereIn('state', filter.states ?? []);
  if (after !== undefined) rowsOnly.where('hostname', '>', after);
  const native = rowsOnly.orderBy('hostname').limit(LIMIT + 1).toSQL().toNative();
  await pageNodes(knex, filter, { limit: LIMIT, after });
  const seen: Captured[] = [];
  const listener = (q: { sql: string; bindings?: unknown[] }) => seen.push({ sql: q.sql, bindings: q.bindings ?? [] });
  knex.on('query', listener);
  try {
    await pageNodes(knex, filter, { limit: LIMIT, after });
  } finally {
    knex.removeListener('query', listener);
  }
  // knex reports pg statements with $n placeholders; knex.raw binds ? in order.
  const asRaw = (q: Captured): Captured => ({ sql: q.sql.replace(/\$\d+/g, '?'), bindings: q.bindings });
  return { select: asRaw({ sql: native.sql, bindings: [...native.bindings] }), repo: seen.map(asRaw) };
}

interface PlanNode {
  'Node Type': string;
  'Index Name'?: string;
  Plans?: PlanNode[];
}

interface Case {
  name: string;
  state: NodeState;
  page: string;
  cursor: string | undefined;
  url: string;
  statements: { select: Captured; repo: Captured[] };
  samples: Record<Column, number[]>;
}

const COLUMNS = ['raw_select', 'raw_repo_statements', 'repo_function', 'repo_and_presentation', 'http_api'] as const;
type Column = (typeof COLUMNS)[number];

async function main(): Promise<void> {
  process.env.LOG_LEVEL ??= 'warn';
  if (!(await postgresAvailable())) throw new Error('the inventory benchmark needs PostgreSQL (TEST_POSTGRES_URL or 127.0.0.1:5432)');
  const startedMachine = machine();
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'nl-bench-inventory-'));
  const database = await createTestDatabase();
  const knex = knexFactory({ client: 'pg', connection: database.url, pool: { min: 0, max: 10 } });
  // Run last to first: the scratch directory (the dev server's files) goes once everything in it has stopped.
  const cleanup: (() => Promise<unknown>)[] = [async () => fs.rmSync(root, { recursive: true, force: true }), () => database.drop(), () => knex.destroy()];
  try {
    await applyMigrations(knex);
    let t = performance.now();
    const { perState, factsBytes } = await insertFleet(knex, NODES);
    const insertMs = performance.now() - t;
    // What autovacuum's analyze would do within a minute of such an insert; the estimate reads these statistics.
    await knex.raw('analyze nodes');
    log(`${NODES} nodes inserted in ${Math.round(insertMs)} ms; ${COMMON} ${perState[COMMON]}, ${RARE} ${perState[RARE]}`);
    const pgVersion = ((await knex.raw('show server_version')).rows[0] as { server_version: string }).server_version;

    const cliPath = process.env.TEMPORAL_CLI_PATH ?? path.join(__dirname, '..', '.tools', 'temporal-v1.5.1', 'temporal');
    const devServer = await startDevServer({ cliPath, dataDir: path.join(root, 'temporal'), port: await freePort(), uiPort: 0, headless: true, namespace: 'default' });
    cleanup.push(() => devServer.stop());
    const config = loadConfig({
      ...process.env,
      DATA_DIR: path.join(root, 'data'),
      PORT: '0',
      TEMPORAL_ADDRESS: devServer.address,
      TASK_QUEUE: 'bench-inventory',
      DATABASE_URL: database.url,
      LOG_LEVEL: 'warn',
    });
    // The API role: what answers GET /api/v1/nodes. No worker, so no monitor sweeps the 100,000 rows meanwhile.
    const service = await startService(config, 'api');
    cleanup.push(() => service.stop());
    const headers = { authorization: `Bearer ${service.apiToken}` };
    const get = async (p: string) => {
      const res = await fetch(`${service.apiUrl}${p}`, { headers });
      const body = await res.text();
      if (res.status !== 200) throw new Error(`GET ${p}: ${res.status} ${body}`);
      return { res, body };
    };

    // Walk every page of both states through the API, following X-Next-Cursor, to reach the deep pages.
    const cases: Case[] = [];
    const walks: Record<string, unknown> = {};
    for (const state of [COMMON, RARE]) {
      const cursors: (string | undefined)[] = [undefined];
      let rows = 0;
      let total = '';
      let estimated = false;
      t = performance.now();
      for (;;) {
        const cursor = cursors.at(-1);
        const { res, body } = await get(`/api/v1/nodes?state=${encodeURIComponent(state)}&limit=${LIMIT}${cursor ? `&cursor=${cursor}` : ''}`);
        rows += (JSON.parse(body) as unknown[]).length;
        total = res.headers.get('x-total-count') ?? '';
        estimated = res.headers.get('x-total-count-estimated') === 'true';
        const next = res.headers.get('x-next-cursor');
        if (!next) break;
        cursors.push(next);
      }
      const walkMs = performance.now() - t;
      walks[state] = { pages: cursors.length, rows_seen: rows, rows_in_database: perState[state], x_total_count: Number(total), total_estimated: estimated, walk_ms: Math.round(walkMs) };
      log(`${state}: ${cursors.length} pages, ${rows} rows walked in ${Math.round(walkMs)} ms; X-Total-Count ${total}${estimated ? ' (estimated)' : ''}`);
      // Deep: 90% of the way through the walk.
      const deepIndex = Math.floor(cursors.length * 0.9);
      for (const [page, cursor] of [['first', undefined], [`deep (page ${deepIndex + 1} of ${cursors.length})`, cursors[deepIndex]]] as const) {
        const filter: NodeFilter = { states: [state] };
        cases.push({
          name: `${state} ${page.split(' ')[0]}`,
          state,
          page,
          cursor,
          url: `/api/v1/nodes?state=${encodeURIComponent(state)}&limit=${LIMIT}${cursor ? `&cursor=${cursor}` : ''}`,
          statements: await captureStatements(knex, filter, cursor === undefined ? undefined : (JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as string)),
          samples: Object.fromEntries(COLUMNS.map((c) => [c, []])) as unknown as Record<Column, number[]>,
        });
      }
    }

    const raw = (q: Captured) => knex.raw(q.sql, q.bindings as Knex.RawBinding[]);
    const rawRepoStatements = async (c: Case) => {
      await Promise.all(c.statements.repo.map(raw));
    };
    const after = (c: Case) => (c.cursor === undefined ? undefined : (JSON.parse(Buffer.from(c.cursor, 'base64url').toString('utf8')) as string));
    const run: Record<Column, (c: Case) => Promise<unknown>> = {
      raw_select: (c) => raw(c.statements.select),
      raw_repo_statements: rawRepoStatements,
      repo_function: (c) => pageNodes(knex, { states: [c.state] }, { limit: LIMIT, after: after(c) }),
      repo_and_presentation: async (c) => JSON.stringify((await pageNodes(knex, { states: [c.state] }, { limit: LIMIT, after: after(c) })).rows.map(presentNode)),
      http_api: (c) => get(c.url),
    };

    log(`measuring: ${cases.length} cases x ${COLUMNS.length} columns, ${WARM_UP} warm-up + ${REQUESTS} rounds`);
    for (let round = 0; round < WARM_UP + REQUESTS; round++) {
      for (const c of cases) {
        for (const column of COLUMNS) {
          const started = performance.now();
          await run[column](c);
          const ms = performance.now() - started;
          if (round >= WARM_UP) c.samples[column].push(ms);
        }
      }
    }

    // The server's own time for each page SELECT and for what pageNodes sends, and the plan it chose (is it the index?).
    const analyze = async (q: Captured) => {
      const explained = await knex.raw(`explain (analyze, buffers, format json) ${q.sql}`, q.bindings as Knex.RawBinding[]);
      const cell: unknown = explained.rows[0]?.['QUERY PLAN'];
      const [plan] = (typeof cell === 'string' ? JSON.parse(cell) : cell) as { Plan: PlanNode; 'Planning Time': number; 'Execution Time': number }[];
      const nodes: string[] = [];
      const walk = (n: PlanNode) => {
        nodes.push([n['Node Type'], n['Index Name']].filter(Boolean).join(' using '));
        for (const child of n.Plans ?? []) walk(child);
      };
      walk(plan!.Plan);
      return { plan: nodes, planning_ms: plan!['Planning Time'], execution_ms: plan!['Execution Time'] };
    };
    const plans = new Map<Case, unknown>();
    const repoPlans = new Map<Case, unknown[]>();
    for (const c of cases) {
      plans.set(c, await analyze(c.statements.select));
      const repo: unknown[] = [];
      for (const q of c.statements.repo) repo.push(await analyze(q));
      repoPlans.set(c, repo);
    }

    const results = cases.map((c) => {
      const s = Object.fromEntries(COLUMNS.map((col) => [col, summary(c.samples[col])])) as Record<Column, Summary>;
      return {
        case: c.name,
        state: c.state,
        page: c.page,
        rows_in_state: perState[c.state],
        sql: { select: c.statements.select.sql, repo_statements: c.statements.repo.map((q) => q.sql) },
        select_explain_analyze: plans.get(c),
        repo_statements_explain_analyze: repoPlans.get(c),
        ...s,
        ratio_p99_to_raw_select: +(s.http_api.p99_ms / s.raw_select.p99_ms).toFixed(2),
        ratio_p99_to_raw_repo_statements: +(s.http_api.p99_ms / s.raw_repo_statements.p99_ms).toFixed(2),
        ratio_p50_to_raw_select: +(s.http_api.p50_ms / s.raw_select.p50_ms).toFixed(2),
        ratio_p50_to_raw_repo_statements: +(s.http_api.p50_ms / s.raw_repo_statements.p50_ms).toFixed(2),
        target_p99_met: s.http_api.p99_ms <= TARGET_P99_MS,
        target_ratio_met: s.http_api.p99_ms <= TARGET_RATIO * s.raw_select.p99_ms,
      };
    });

    const result = {
      at: new Date().toISOString(),
      benchmark: 'inventory',
      machine: startedMachine,
      load_1min_at_end: os.loadavg()[0],
      postgresql: pgVersion,
      nodes: NODES,
      nodes_per_state: perState,
      insert_ms: Math.round(insertMs),
      facts_bytes_per_node: factsBytes,
      exact_count_below: EXACT_COUNT_BELOW,
      estimate_fresh_ms: ESTIMATE_FRESH_MS,
      limit: LIMIT,
      warm_up: WARM_UP,
      requests_per_case: REQUESTS,
      method:
        'Sequential, one request at a time, over keep-alive loopback HTTP from the same process. Each round runs every case and column once, interleaved. raw_select: the page SELECT for its rows only (no total), built by knex as pageNodes builds its rows query, replayed by knex.raw. raw_repo_statements: every statement pageNodes sends for the page once it holds the estimate of the filter (the SELECT alone for a filter estimated at exact_count_below or more, the SELECT and the COUNT of the filter side by side below), replayed at once; the estimate is asked again (EXPLAIN beside the SELECT) every estimate_fresh_ms, which repo_function and http_api include. repo_function: pageNodes(). repo_and_presentation: plus presentNode and JSON.stringify. http_api: GET through the real service (api role) until the body is read.',
      targets: { p99_ms: TARGET_P99_MS, ratio_to_raw_sql: TARGET_RATIO, ratio_is: 'http_api p99 / raw_select p99' },
      walks,
      cases: results,
    };
    const file = writeResult(`inventory-${NODES}`, result);
    console.log(
      table([
        ['case', 'rows', ...COLUMNS.map((c) => `${c} p50/p99`), 'p99 ratio to raw select / repo stmts'],
        ...results.map((r) => [
          r.case,
          r.rows_in_state ?? 0,
          ...COLUMNS.map((c) => `${r[c].p50_ms.toFixed(2)}/${r[c].p99_ms.toFixed(2)}`),
          `${r.ratio_p99_to_raw_select} / ${r.ratio_p99_to_raw_repo_statements}`,
        ]),
      ]),
    );
    log(`nproc ${startedMachine.nproc}, 1-min load ${startedMachine.load_1min.toFixed(2)} at start, ${os.loadavg()[0]!.toFixed(2)} at end; written to ${file}`);
  } finally {
    await runCleanup(cleanup);
  }
}

runBenchmark(main);
