import type { Knex } from 'knex';

/**
 * Keyset pages: a list is ordered by a unique key and a page starts after the key of the previous page's
 * last row (`WHERE key > after ORDER BY key LIMIT n + 1`), so rows inserted or removed between two
 * requests never shift a later page onto a row already shown, or past one not yet shown. The extra row
 * only says whether there is a next page.
 */
export interface PageRequest<K> {
  limit: number;
  /** The sort key of the last row of the previous page; none for the first page. */
  after?: K;
  /** Rows to skip (the older, offset form of /tasks and /events); ignored with `after`. */
  offset?: number;
}

export interface Total {
  count: number;
  /** The planner's estimate, not a count: counting exactly would read every matching row. */
  estimated: boolean;
}

export interface Page<T, K> {
  rows: T[];
  /** The key to ask for the next page with; null on the last page. */
  next: K | null;
  total: Total;
}

/**
 * Below this many matching rows, by the planner's estimate, the total is counted: a count of a few
 * thousand index entries costs about a millisecond. Above it the estimate is the answer, so a page of
 * 100 out of 100,000 rows never reads all 100,000.
 */
export const EXACT_COUNT_BELOW = 10_000;

/** A timestamptz as text with every microsecond, so a cursor made from it compares equal to the stored value. */
export function exactTime(knex: Knex, column: string, as: string): Knex.Raw {
  return knex.raw(`to_char(?? at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as ??`, [column, as]);
}

/** The planner's estimate of the rows `filtered` matches: one EXPLAIN, no row read. */
async function estimateOf(knex: Knex, filtered: Knex.QueryBuilder): Promise<number> {
  const { sql, bindings } = filtered.toSQL();
  const explained = await knex.raw(`explain (format json) ${sql}`, bindings as Knex.RawBinding[]);
  const cell: unknown = explained.rows[0]?.['QUERY PLAN'];
  const plan = (typeof cell === 'string' ? JSON.parse(cell) : cell) as { Plan: { 'Plan Rows': number } }[];
  return Math.round(plan[0]?.Plan['Plan Rows'] ?? 0);
}

async function countOf(knex: Knex, filtered: Knex.QueryBuilder): Promise<number> {
  const counted = (await knex.from(countable(knex, filtered).as('matching')).count({ n: '*' })) as { n: string | number }[];
  return Number(counted[0]?.n ?? 0);
}

/** `filtered` as the subject of a count: its WHERE and joins, none of its columns or order. */
function countable(knex: Knex, filtered: Knex.QueryBuilder): Knex.QueryBuilder {
  return filtered.clone().clearSelect().clearOrder().select(knex.raw('1'));
}

/** The matching rows of `filtered`, counted or estimated. */
export async function totalOf(knex: Knex, filtered: Knex.QueryBuilder, exactBelow = EXACT_COUNT_BELOW): Promise<Total> {
  const estimate = await estimateOf(knex, filtered);
  if (estimate >= exactBelow) return { count: estimate, estimated: true };
  return { count: await countOf(knex, filtered), estimated: false };
}

/**
 * How long a filter's estimate is trusted without asking the planner again. The estimate moves only as
 * the table grows or shrinks by whole pages and when ANALYZE runs; a walk through 900 pages asks once
 * every few hundred pages instead of on every page. Exact counts are never remembered: a small total
 * is counted for every page, beside its SELECT.
 */
export const ESTIMATE_FRESH_MS = 10_000;
/** Filters remembered per database handle; past this the oldest is forgotten (a filter by host names makes many). */
const ESTIMATES_KEPT = 1000;
const estimates = new WeakMap<Knex, Map<string, { estimate: number; at: number }>>();

function rememberedEstimates(knex: Knex): Map<string, { estimate: number; at: number }> {
  let kept = estimates.get(knex);
  if (!kept) estimates.set(knex, (kept = new Map()));
  return kept;
}

function remember(kept: Map<string, { estimate: number; at: number }>, key: string, estimate: number): void {
  kept.delete(key);
  if (kept.size >= ESTIMATES_KEPT) kept.delete(kept.keys().next().value!);
  kept.set(key, { estimate, at: Date.now() });
}

/**
 * One page of `filtered`: `after` narrows it past the cursor, `order` sorts it by the unique key, and
 * `keyOf` reads that key back from a row for the next cursor. The total is counted (or estimated) on
 * the filtered query without the cursor, so every page of a walk reports the same total.
 *
 * The planner's estimate of the filter decides between counting and estimating (below EXACT_COUNT_BELOW
 * it counts). Asking for it is a round trip of its own, which on a loaded machine also waits for a CPU,
 * and a COUNT asked only once the estimate is back is a second one after it; so the estimate is
 * remembered for ESTIMATE_FRESH_MS, and every statement a page needs is sent at once:
 * - estimated large, and fresh: the page's SELECT alone; the total is the remembered estimate;
 * - estimated small, and fresh: the SELECT and the COUNT side by side. Should the count reach
 *   EXACT_COUNT_BELOW, the planner is asked again and decides, as it would have without the memory;
 * - not known or not fresh: the EXPLAIN beside the SELECT (and beside the COUNT when the filter was
 *   small), then the COUNT if the estimate is small and it was not sent already.
 */
export async function keysetPage<Row, K>(
  knex: Knex,
  filtered: () => Knex.QueryBuilder,
  page: PageRequest<K>,
  list: {
    after(query: Knex.QueryBuilder, key: K): void;
    order(query: Knex.QueryBuilder): void;
    keyOf(row: Row): K;
    exactBelow?: number;
  },
): Promise<Page<Row, K>> {
  const exactBelow = list.exactBelow ?? EXACT_COUNT_BELOW;
  const query = filtered();
  const { sql, bindings } = query.toSQL();
  const key = `${sql}\u0000${JSON.stringify(bindings)}`;
  if (page.after !== undefined) list.after(query, page.after);
  else if (page.offset) query.offset(page.offset);
  list.order(query);

  const kept = rememberedEstimates(knex);
  const known = kept.get(key);
  const fresh = known !== undefined && Date.now() - known.at < ESTIMATE_FRESH_MS;
  const countNow = known !== undefined && known.estimate < exactBelow;
  const [rows, estimate, counted] = await Promise.all([
    query.limit(page.limit + 1) as Promise<Row[]>,
    fresh ? undefined : estimateOf(knex, filtered()),
    countNow ? countOf(knex, filtered()) : undefined,
  ]);

  let decided = estimate;
  if (decided === undefined) {
    if (counted === undefined) return pageOf(rows, page.limit, list.keyOf, { count: known!.estimate, estimated: true });
    // Remembered as small, but the count says otherwise: the planner decides.
    if (counted >= exactBelow) decided = await estimateOf(knex, filtered());
  }
  if (decided !== undefined) remember(kept, key, decided);
  const total: Total =
    decided !== undefined && decided >= exactBelow ? { count: decided, estimated: true } : { count: counted ?? (await countOf(knex, filtered())), estimated: false };
  return pageOf(rows, page.limit, list.keyOf, total);
}

function pageOf<Row, K>(rows: Row[], limit: number, keyOf: (row: Row) => K, total: Total): Page<Row, K> {
  const shown = rows.slice(0, limit);
  const last = shown[shown.length - 1];
  return { rows: shown, next: rows.length > limit && last !== undefined ? keyOf(last) : null, total };
}
