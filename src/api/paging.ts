import type { Request, Response } from 'express';
import { z } from 'zod';
import type { Page } from '../db/page';
import { ValidationFailed } from '../domain/errors';
import { oneValue } from './validation';

/**
 * Paged lists keep a JSON array as their body, so every existing client reads them unchanged; paging
 * travels in headers, as GitHub's API does: `Link: <...>; rel="next"`, `X-Next-Cursor`, and
 * `X-Total-Count` (with `X-Total-Count-Estimated: true` when it is the planner's estimate).
 */
export const PAGE_HEADERS = {
  next: 'X-Next-Cursor',
  total: 'X-Total-Count',
  estimated: 'X-Total-Count-Estimated',
} as const;

export const MAX_PAGE = 1000;

export const limitParam = oneValue(z.coerce.number().int().min(1).max(MAX_PAGE))
  .default(100)
  .meta({ description: `At most this many entries (default 100, at most ${MAX_PAGE}).` });

/** A cursor is base64url of the JSON of the last row's sort key; `key` says what a key of this list is. */
export function cursorParam<K>(key: z.ZodType<K>) {
  return oneValue(
    z.string().transform((text, ctx): K => {
      const parsed = key.safeParse(decode(text));
      if (parsed.success) return parsed.data;
      ctx.addIssue({ code: 'custom', message: 'is not a cursor this list gave out; start again without it' });
      return z.NEVER;
    }),
  )
    .optional()
    .meta({ description: `The ${PAGE_HEADERS.next} of the previous page (also in its Link rel="next"); absent for the first page.` });
}

function decode(text: string): unknown {
  try {
    return JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
}

export function encodeCursor(key: unknown): string {
  return Buffer.from(JSON.stringify(key), 'utf8').toString('base64url');
}

/** Cursor keys: each part as strict as the column it is compared with, so a forged cursor is a 400, never a 500. */
export const timeKey = z.string().regex(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);

/** The older `offset` of /tasks and /events still works, but not together with a cursor. */
export function refuseOffsetWithCursor(query: { cursor?: unknown; offset?: number }): void {
  if (query.cursor !== undefined && query.offset) {
    throw new ValidationFailed([{ field: 'offset', problem: 'cannot be combined with cursor; the cursor already says where the page starts' }]);
  }
}

/**
 * Answers with one page: the rows as the body, and the headers that lead to the next page. The next
 * link repeats the request's own query (filters, limit) with the new cursor; `withLink: false` when
 * the request had a body the link cannot carry (the client sends the same body with the cursor).
 */
export function sendPage<T, K>(req: Request, res: Response, page: Page<T, K>, present: (row: T) => unknown, options: { limit: number; withLink?: boolean }): void {
  res.set(PAGE_HEADERS.total, String(page.total.count));
  if (page.total.estimated) res.set(PAGE_HEADERS.estimated, 'true');
  if (page.next !== null) {
    const cursor = encodeCursor(page.next);
    res.set(PAGE_HEADERS.next, cursor);
    if (options.withLink !== false) {
      const search = new URLSearchParams(req.originalUrl.split('?')[1] ?? '');
      search.delete('cursor');
      search.delete('offset');
      search.set('limit', String(options.limit));
      search.set('cursor', cursor);
      res.set('Link', `<${req.baseUrl}${req.path}?${search.toString()}>; rel="next"`);
    }
  }
  res.json(page.rows.map(present));
}
