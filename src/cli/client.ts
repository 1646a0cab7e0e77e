import fs from 'node:fs';
import path from 'node:path';

export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

export interface Connection {
  server: string;
  token: string | undefined;
}

/** Flags first, then the environment, then the files `npm start` leaves in DATA_DIR on this machine. */
export function resolveConnection(flags: { server?: string; token?: string; dataDir?: string }, env = process.env): Connection {
  const dataDir = flags.dataDir ?? env.DATA_DIR ?? path.resolve(__dirname, '..', '..', '.data');
  const fromFile = (name: string) => {
    try {
      return fs.readFileSync(path.join(dataDir, name), 'utf8').trim() || undefined;
    } catch {
      return undefined;
    }
  };
  return {
    server: (flags.server ?? env.NODECTL_SERVER ?? fromFile('api-url') ?? 'http://127.0.0.1:8080').replace(/\/+$/, ''),
    token: flags.token ?? env.NODECTL_TOKEN ?? env.API_TOKEN ?? fromFile('api-token'),
  };
}

/** The REST API as the CLI sees it: a non-2xx answer becomes a CliError carrying the server's words. */
export class ApiClient {
  constructor(private readonly connection: Connection) {}

  async request<T = any>(method: string, pathname: string, body?: unknown): Promise<T> {
    return (await this.send<T>(method, pathname, body)).body;
  }

  /**
   * Every entry of a paged list (GET /api/v1/nodes and the like), page after page by X-Next-Cursor, in
   * the server's order. `max` (--limit) stops after that many entries; without it the list is whole.
   * A GET whose names travel in the body (info/nodes) sends the same body with each cursor.
   */
  async list<T = any>(pathname: string, options: { max?: number; body?: unknown } = {}): Promise<T[]> {
    const entries: T[] = [];
    let cursor: string | null = null;
    do {
      const want = options.max === undefined ? MAX_PAGE : Math.min(MAX_PAGE, options.max - entries.length);
      const url = new URL(pathname, 'http://paging.invalid');
      url.searchParams.set('limit', String(want));
      if (cursor !== null) url.searchParams.set('cursor', cursor);
      const page = await this.send<T[]>('GET', `${url.pathname}${url.search}`, options.body);
      entries.push(...page.body);
      cursor = page.headers.get('x-next-cursor');
    } while (cursor !== null && (options.max === undefined || entries.length < options.max));
    return entries;
  }

  private async send<T>(method: string, pathname: string, body?: unknown): Promise<{ body: T; headers: Headers }> {
    let res: Response;
    try {
      res = await fetch(`${this.connection.server}${pathname}`, {
        method,
        headers: {
          ...(this.connection.token ? { authorization: `Bearer ${this.connection.token}` } : {}),
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      throw new CliError(`cannot reach ${this.connection.server}: ${(err as Error).cause ?? (err as Error).message}`);
    }
    const text = await res.text();
    const parsed = text ? JSON.parse(text) : undefined;
    if (!res.ok) {
      const error = parsed?.error ?? {};
      const lines = [`${res.status} ${error.code ?? ''}: ${error.message ?? text}`.trim()];
      for (const f of error.fields ?? []) lines.push(`  ${f.field}: ${f.problem}`);
      for (const o of error.offenders ?? []) lines.push(`  ${o.node}: ${o.problem}${o.allowed ? ` (allowed: ${o.allowed.join(', ') || 'none'})` : ''}`);
      throw new CliError(lines.join('\n'));
    }
    return { body: parsed as T, headers: res.headers };
  }
}

/** The largest page the API serves (src/api/paging.ts): the fewest round trips for a whole list. */
const MAX_PAGE = 1000;

/** --limit: a positive whole number of entries, or none (every entry). */
export function parseLimit(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (!/^[1-9]\d*$/.test(text)) throw new CliError(`--limit must be a positive whole number, not ${text}`, 2);
  return Number(text);
}

/** --extra-vars: a JSON object or nothing; bad JSON is a usage error (exit 2). */
export function parseExtraVars(text: string | undefined): unknown {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    throw new CliError(`--extra-vars is not JSON: ${text}`, 2);
  }
}
