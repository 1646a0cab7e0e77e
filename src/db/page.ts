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

/** The matching rows of `filtered` (a query with its WHERE and nothing else), counted or estimated. */
export async function totalOf(knex: Knex, filtered: Knex.QueryBuilder, exactBelow = EXACT_COUNT_BELOW): Promise<Total> {
  const { sql, bindings } = filtered.toSQL();
  const explained = await knex.raw(`explain (format json) ${sql}`, bindings as Knex.RawBinding[]);
  const cell: unknown = explained.rows[0]?.['QUERY PLAN'];
  const plan = (typeof cell === 'string' ? JSON.parse(cell) : cell) as { Plan: { 'Plan Rows': number } }[];
  const estimate = Math.round(plan[0]?.Plan['Plan Rows'] ?? 0);
  if (estimate >= exactBelow) return { count: estimate, estimated: true };
  const counted = (await knex.from(filtered.clone().clearSelect().clearOrder().select(knex.raw('1')).as('matching')).count({ n: '*' })) as { n: string | number }[];
  return { count: Number(counted[0]?.n ?? 0), estimated: false };
}

/**
 * One page of `filtered`: `after` narrows it past the cursor, `order` sorts it by the unique key, and
 * `keyOf` reads that key back from a row for the next cursor. The total is counted (or estimated) on
 * the filtered query without the cursor, so every page of a walk reports the same total.
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
  const query = filtered();
  if (page.after !== undefined) list.after(query, page.after);
  else if (page.offset) query.offset(page.offset);
  list.order(query);
  const [rows, total] = await Promise.all([query.limit(page.limit + 1) as Promise<Row[]>, totalOf(knex, filtered(), list.exactBelow)]);
  const shown = rows.slice(0, page.limit);
  const last = shown[shown.length - 1];
  return { rows: shown, next: rows.length > page.limit && last !== undefined ? list.keyOf(last) : null, total };
}
