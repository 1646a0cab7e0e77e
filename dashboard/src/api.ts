/** The REST API as the dashboard calls it: same origin, the session cookie, JSON both ways. */

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly body: unknown,
  ) {
    super(message);
  }
}

let onUnauthorized: () => void = () => undefined;

/** Called when a request is refused for want of a session (expired, logged out elsewhere): show the log-in. */
export function whenUnauthorized(handler: () => void): void {
  onUnauthorized = handler;
}

export async function api<T = unknown>(method: string, path: string, body?: unknown, options: { login?: boolean } = {}): Promise<T> {
  return (await call<T>(method, path, body, options)).body;
}

async function call<T>(method: string, path: string, body?: unknown, options: { login?: boolean } = {}): Promise<{ body: T; headers: Headers }> {
  const headers: Record<string, string> = {
    accept: 'application/json',
    // The service refuses cookie-authenticated changes without it: another site's form cannot set it.
    'x-requested-with': 'dashboard',
  };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(path, { method, headers, credentials: 'same-origin', body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let parsed: unknown = undefined;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = text;
  }
  if (!res.ok) {
    const error = (parsed as { error?: { message?: string } } | undefined)?.error;
    if (res.status === 401 && !options.login) onUnauthorized();
    throw new ApiError(res.status, error?.message ?? `${res.status} ${res.statusText}`, parsed);
  }
  return { body: parsed as T, headers: res.headers };
}

export const get = <T,>(path: string) => api<T>('GET', path);

/** A query string from the values that are set. */
export function query(params: Record<string, string | number | undefined>): string {
  const search = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') search.set(k, String(v));
  const text = search.toString();
  return text ? `?${text}` : '';
}

/** The first `want` entries of a paged list, page after page by X-Next-Cursor; `more` when the list goes on. */
export async function getMany<T>(path: string, want: number): Promise<{ rows: T[]; total: number; more: boolean }> {
  const rows: T[] = [];
  let cursor: string | null = null;
  let total = 0;
  do {
    const separator = path.includes('?') ? '&' : '?';
    const page: { body: T[]; headers: Headers } = await call<T[]>('GET', `${path}${separator}${query({ limit: Math.min(1000, want - rows.length), cursor: cursor ?? undefined }).slice(1)}`);
    rows.push(...page.body);
    total = Number(page.headers.get('x-total-count') ?? rows.length);
    cursor = page.headers.get('x-next-cursor');
  } while (cursor !== null && rows.length < want);
  return { rows, total, more: cursor !== null };
}

/** One page of a paged list: its rows, the total the list's filter matches, and the next page's cursor (null on the last). */
export async function getPage<T>(path: string): Promise<{ rows: T[]; total: number; next: string | null }> {
  const page = await call<T[]>('GET', path);
  return { rows: page.body, total: Number(page.headers.get('x-total-count') ?? page.body.length), next: page.headers.get('x-next-cursor') };
}
