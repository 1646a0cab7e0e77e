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
    return parsed as T;
  }
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
