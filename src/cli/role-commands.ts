import fs from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { CliError, type ApiClient } from './client';
import { table } from './render';

type Out = (text: string) => void;

export const ROLES_USAGE = `  nodectl roles list | show NAME | delete NAME
  nodectl roles create NAME --script FILE [--requires a,b] [--attr k=v]... [--description D] [--timeout SECONDS]
  nodectl roles create --from-file FILE                        a role file, JSON or YAML, with the API's fields
  nodectl roles update NAME [the same flags] [--unset KEY]...  changes only what the flags name
  nodectl roles update NAME --from-file FILE                   the whole role from the file`;

export const ATTR_HELP = `--attr k=v: the value is read as JSON when it parses (3, true, null, {"a":1}, "quoted"), else as plain text;
  repeat it for several keys. --requires takes role names separated by commas (--requires '' for none).`;

/** The flags nodectl.ts adds to its parseArgs table for roles, deployments and noderoles. */
export const ROLE_OPTIONS = {
  attr: { type: 'string', multiple: true },
  unset: { type: 'string', multiple: true },
  script: { type: 'string' },
  requires: { type: 'string' },
  description: { type: 'string' },
  timeout: { type: 'string' },
} as const;

export interface RoleFlags {
  json: boolean;
  attr?: string[];
  unset?: string[];
  script?: string;
  requires?: string;
  description?: string;
  timeout?: string;
  'from-file'?: string;
}

/** A role as GET /api/v1/roles/{name} shows it. */
export interface Role {
  name: string;
  kind: 'script' | 'os-install' | 'commission';
  description: string;
  requires: string[];
  attributes: Record<string, unknown>;
  script: string | null;
  timeout_seconds: number;
  revision: number;
  builtin: boolean;
  created_at: string;
  updated_at: string;
}

/** The body of POST /roles (with name) and PUT /roles/{name} (without). */
type RoleBody = Partial<Pick<Role, 'name' | 'script' | 'requires' | 'attributes' | 'description' | 'timeout_seconds'>>;

/**
 * --attr k=v pairs into an object. A value that parses as JSON is taken as that JSON (numbers,
 * booleans, null, objects, arrays, "quoted strings"); anything else is the text itself, so
 * `--attr image=tiny` needs no quotes. A pair without `=` or with an empty key is a usage error.
 */
export function parseAttrs(items: readonly string[] | undefined, flag = 'attr'): Record<string, unknown> {
  const result: Record<string, unknown> = {};
  for (const item of items ?? []) {
    const at = item.indexOf('=');
    if (at <= 0) throw new CliError(`--${flag} takes key=value (the value JSON or plain text), got ${JSON.stringify(item)}`, 2);
    const text = item.slice(at + 1);
    let value: unknown = text;
    try {
      value = JSON.parse(text);
    } catch {
      // Not JSON: the plain text is the value.
    }
    result[item.slice(0, at)] = value;
  }
  return result;
}

/** Attributes as one line: `{}` reads as "none" in a table. */
export const attrsText = (attributes: Record<string, unknown> | null | undefined) =>
  attributes && Object.keys(attributes).length > 0 ? JSON.stringify(attributes) : '-';

function readText(file: string, what: string): string {
  try {
    return fs.readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (err) {
    throw new CliError(`cannot read ${what} ${file === '-' ? 'from standard input' : file}: ${(err as Error).message}`, 2);
  }
}

/**
 * A role file: one role as a JSON or YAML mapping with the fields of POST /api/v1/roles (the same files
 * ROLES_DIR holds). YAML is a superset of JSON, so one parser reads both; the server checks the fields.
 */
export function parseRoleFile(text: string, source: string): RoleBody {
  let parsed: unknown;
  try {
    parsed = parseYaml(text);
  } catch (err) {
    throw new CliError(`${source} is neither JSON nor YAML: ${(err as Error).message}`, 2);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new CliError(`${source} must hold one role: a mapping with name, script, requires, attributes, description, timeout_seconds`, 2);
  }
  const role = parsed as RoleBody;
  if (typeof role.name !== 'string' || role.name === '') throw new CliError(`${source} names no role (its "name" field)`, 2);
  return role;
}

function parseTimeout(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (!/^[1-9]\d*$/.test(text)) throw new CliError(`--timeout takes a whole number of seconds, not ${text}`, 2);
  return Number(text);
}

const parseRequires = (text: string | undefined) =>
  text === undefined
    ? undefined
    : text
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);

/** The fields the flags name, and only those: an update leaves the others as they are. */
function bodyFromFlags(flags: RoleFlags): RoleBody {
  const body: RoleBody = {};
  if (flags.script !== undefined) body.script = readText(flags.script, 'the script');
  const requires = parseRequires(flags.requires);
  if (requires !== undefined) body.requires = requires;
  if (flags.attr !== undefined) body.attributes = parseAttrs(flags.attr);
  if (flags.description !== undefined) body.description = flags.description;
  const timeout = parseTimeout(flags.timeout);
  if (timeout !== undefined) body.timeout_seconds = timeout;
  return body;
}

const FIELD_FLAGS = ['script', 'requires', 'attr', 'unset', 'description', 'timeout'] as const;

function fromFileAlone(flags: RoleFlags, usage: string): RoleBody {
  const mixed = FIELD_FLAGS.filter((f) => flags[f] !== undefined);
  if (mixed.length > 0) throw new CliError(`--from-file takes the whole role from the file; leave out --${mixed.join(', --')}\n${usage}`, 2);
  const file = flags['from-file']!;
  return parseRoleFile(readText(file, 'the role file'), file === '-' ? 'stdin' : path.basename(file));
}

function showRole(role: Role, json: boolean, out: Out, withScript = true): void {
  if (json) {
    out(JSON.stringify(role, null, 2));
    return;
  }
  const rows: [string, string][] = [
    ['name', role.name],
    ['kind', `${role.kind}${role.builtin ? ' (built in)' : ''}`],
    ['description', role.description || '-'],
    ['requires', role.requires.length > 0 ? role.requires.join(', ') : '-'],
    ['attributes', attrsText(role.attributes)],
    ['timeout', `${role.timeout_seconds}s`],
    ['revision', String(role.revision)],
    ['updated', role.updated_at],
  ];
  out(rows.map(([k, v]) => `${k.padEnd(12)}${v}`).join('\n'));
  if (role.script === null) return;
  if (withScript) out(`script:\n${role.script.trimEnd()}`);
  else out(`${'script'.padEnd(12)}${role.script.split('\n').length} lines (nodectl roles show ${role.name})`);
}

const rolePath = (name: string) => `/api/v1/roles/${encodeURIComponent(name)}`;

const CREATE_USAGE = 'usage: nodectl roles create NAME --script FILE [--requires a,b] [--attr k=v]... [--description D] [--timeout SECONDS] | nodectl roles create --from-file FILE';
const UPDATE_USAGE = 'usage: nodectl roles update NAME [--script FILE] [--requires a,b] [--attr k=v]... [--unset KEY]... [--description D] [--timeout SECONDS] | --from-file FILE';

async function createRole(api: ApiClient, names: string[], flags: RoleFlags, out: Out): Promise<number> {
  let body: RoleBody;
  if (flags['from-file'] !== undefined) {
    if (names.length > 0) throw new CliError(`${CREATE_USAGE}\n(the role file names the role)`, 2);
    body = fromFileAlone(flags, CREATE_USAGE);
  } else {
    if (names.length !== 1 || flags.script === undefined) throw new CliError(CREATE_USAGE, 2);
    if (flags.unset !== undefined) throw new CliError('--unset is for roles update', 2);
    body = { name: names[0]!, ...bodyFromFlags(flags) };
  }
  showRole(await api.request<Role>('POST', '/api/v1/roles', body), flags.json, out, false);
  return 0;
}

/**
 * PUT replaces the whole role, so an update starts from the role as it is and changes what the flags
 * name: `roles update b --attr port=80` keeps b's script, requirements and other attributes. A built-in
 * role takes only its attributes and description.
 */
async function updateRole(api: ApiClient, names: string[], flags: RoleFlags, out: Out): Promise<number> {
  if (names.length !== 1) throw new CliError(UPDATE_USAGE, 2);
  const name = names[0]!;
  let body: RoleBody;
  if (flags['from-file'] !== undefined) {
    const { name: named, ...rest } = fromFileAlone(flags, UPDATE_USAGE);
    if (named !== name) throw new CliError(`the role file names ${named}, not ${name}`, 2);
    body = rest;
  } else {
    const change = bodyFromFlags(flags);
    const current = await api.request<Role>('GET', rolePath(name));
    const attributes = { ...current.attributes, ...change.attributes };
    for (const key of flags.unset ?? []) delete attributes[key];
    body = current.builtin
      ? { attributes, description: change.description ?? current.description }
      : {
          script: change.script ?? current.script ?? undefined,
          requires: change.requires ?? current.requires,
          attributes,
          description: change.description ?? current.description,
          timeout_seconds: change.timeout_seconds ?? current.timeout_seconds,
        };
  }
  showRole(await api.request<Role>('PUT', rolePath(name), body), flags.json, out, false);
  return 0;
}

/** `nodectl roles VERB ...`; a usage mistake is exit status 2, a refusal by the server 1. */
export async function rolesCommand(api: ApiClient, verb: string | undefined, names: string[], flags: RoleFlags, out: Out): Promise<number> {
  switch (verb) {
    case 'list': {
      if (names.length > 0) throw new CliError('usage: nodectl roles list', 2);
      const roles = await api.list<Role>('/api/v1/roles');
      if (flags.json) out(JSON.stringify(roles, null, 2));
      else
        out(
          table(
            ['NAME', 'KIND', 'REQUIRES', 'ATTRIBUTES', 'REVISION', 'DESCRIPTION'],
            roles.map((r) => [r.name, `${r.kind}${r.builtin ? ' (built in)' : ''}`, r.requires.join(',') || '-', attrsText(r.attributes), r.revision, r.description || '-']),
          ),
        );
      return 0;
    }
    case 'show':
      if (names.length !== 1) throw new CliError('usage: nodectl roles show NAME', 2);
      showRole(await api.request<Role>('GET', rolePath(names[0]!)), flags.json, out);
      return 0;
    case 'create':
      return createRole(api, names, flags, out);
    case 'update':
      return updateRole(api, names, flags, out);
    case 'delete':
      if (names.length !== 1) throw new CliError('usage: nodectl roles delete NAME', 2);
      await api.request('DELETE', rolePath(names[0]!));
      out(flags.json ? JSON.stringify({ deleted: names[0] }) : `role ${names[0]} deleted`);
      return 0;
    default:
      throw new CliError(`unknown command: roles ${verb ?? ''}\n\n${ROLES_USAGE}`, 2);
  }
}
