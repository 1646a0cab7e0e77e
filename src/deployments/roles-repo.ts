import type { Knex } from 'knex';
import { Conflict, NotFound, ValidationFailed } from '../domain/errors';
import { findCycle, type RoleKind } from '../domain/noderoles';
import { keysetPage, type Page, type PageRequest } from '../db/page';

export interface RoleRecord {
  name: string;
  kind: RoleKind;
  description: string;
  requires: string[];
  attributes: Record<string, unknown>;
  script: string | null;
  timeoutSeconds: number;
  revision: number;
  /** api, file (ROLES_DIR) or builtin. */
  source: string;
  createdAt: Date;
  updatedAt: Date;
}

/** What a role file or a POST /roles defines; PUT gives the same minus the name. */
export interface RoleDefinition {
  name: string;
  script?: string | null;
  requires?: string[];
  attributes?: Record<string, unknown>;
  description?: string;
  timeout_seconds?: number;
}

interface RoleRow {
  name: string;
  kind: RoleKind;
  description: string;
  requires: string[];
  attributes: Record<string, unknown>;
  script: string | null;
  timeout_seconds: number;
  revision: number;
  source: string;
  created_at: Date;
  updated_at: Date;
}

function toRole(row: RoleRow): RoleRecord {
  return {
    name: row.name,
    kind: row.kind,
    description: row.description,
    requires: row.requires,
    attributes: row.attributes,
    script: row.script,
    timeoutSeconds: row.timeout_seconds,
    revision: row.revision,
    source: row.source,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

/** Roles change rarely and their graph is checked as a whole: one writer at a time. */
const ROLES_LOCK = 7_270_012;

export async function getRole(knex: Knex, name: string): Promise<RoleRecord | undefined> {
  const row = await knex<RoleRow>('roles').where({ name }).first();
  return row ? toRole(row) : undefined;
}

export async function pageRoles(knex: Knex, page: PageRequest<string>): Promise<Page<RoleRecord, string>> {
  const result = await keysetPage<RoleRow, string>(knex, () => knex('roles').select('*'), page, {
    after: (query, name) => query.where('name', '>', name),
    order: (query) => query.orderBy('name'),
    keyOf: (row) => row.name,
  });
  return { ...result, rows: result.rows.map(toRole) };
}

/** name -> the roles it requires, for every role (a few hundred at most: roles are definitions, not data). */
export async function roleGraph(knex: Knex): Promise<Map<string, string[]>> {
  const rows: { name: string; requires: string[] }[] = await knex('roles').select('name', 'requires');
  return new Map(rows.map((r) => [r.name, r.requires]));
}

/** Refuses a graph with an unknown required role or a cycle, naming them (400: the definition is wrong). */
function checkGraph(graph: Map<string, string[]>, changed: string[], field: (name: string, key: string) => string): void {
  const problems: { field: string; problem: string }[] = [];
  for (const name of changed) {
    const unknown = (graph.get(name) ?? []).filter((r) => !graph.has(r));
    if (unknown.length > 0) problems.push({ field: field(name, 'requires'), problem: `names unknown role(s) ${unknown.join(', ')}` });
    if ((graph.get(name) ?? []).includes(name)) problems.push({ field: field(name, 'requires'), problem: 'names the role itself' });
  }
  if (problems.length > 0) throw new ValidationFailed(problems);
  const cycle = findCycle(graph);
  if (cycle) throw new ValidationFailed([{ field: field(changed.includes(cycle[0]!) ? cycle[0]! : changed[0]!, 'requires'), problem: `makes a dependency cycle: ${cycle.join(' -> ')}` }]);
}

function scriptProblem(definition: RoleDefinition): string | null {
  if (typeof definition.script !== 'string' || !definition.script.startsWith('#!')) return 'must be the text of an executable, starting with #! (an interpreter line)';
  return null;
}

/**
 * Creates or replaces script roles, checking the resulting graph as a whole: a refused set changes
 * nothing. `mode` says what an existing name means: refused (POST), replaced (PUT), or upserted (files).
 */
export async function saveRoles(knex: Knex, definitions: RoleDefinition[], mode: 'create' | 'replace' | 'upsert', source: 'api' | 'file'): Promise<RoleRecord[]> {
  return knex.transaction(async (trx) => {
    await trx.raw('select pg_advisory_xact_lock(?)', [ROLES_LOCK]);
    const graph = await roleGraph(trx);
    // One role (a request body) is named by its fields; a set (role files) by role and field.
    const field = (name: string, key: string) => (definitions.length === 1 && source === 'api' ? key : `${name}.${key}`);
    const existing = new Map((await trx<RoleRow>('roles').whereIn('name', definitions.map((d) => d.name))).map((r) => [r.name, r]));
    const problems: { field: string; problem: string }[] = [];
    for (const d of definitions) {
      const before = existing.get(d.name);
      if (mode === 'create' && before) throw new Conflict(`role ${d.name} exists; change it with PUT /api/v1/roles/${d.name}`, { role: d.name });
      if (mode === 'replace' && !before) throw new NotFound(`no role ${d.name}`, { role: d.name });
      if (before?.source === 'builtin') {
        // A built-in role's work is the service's own: only its defaults and description are the operator's.
        if (d.script !== undefined && d.script !== null) problems.push({ field: field(d.name, 'script'), problem: `cannot be set: ${d.name} is built in` });
        if ((d.requires ?? []).length > 0) problems.push({ field: field(d.name, 'requires'), problem: `cannot be set: ${d.name} is built in` });
        if (d.timeout_seconds !== undefined) problems.push({ field: field(d.name, 'timeout_seconds'), problem: `cannot be set: ${d.name} is built in (it runs the node's own lifecycle)` });
        continue;
      }
      const script = scriptProblem(d);
      if (script) problems.push({ field: field(d.name, 'script'), problem: script });
      graph.set(d.name, d.requires ?? []);
    }
    if (problems.length > 0) throw new ValidationFailed(problems);
    checkGraph(graph, definitions.map((d) => d.name), field);

    const saved: RoleRecord[] = [];
    for (const d of definitions) {
      const before = existing.get(d.name);
      const fields = {
        description: d.description ?? before?.description ?? '',
        attributes: JSON.stringify(d.attributes ?? {}),
        ...(before?.source === 'builtin'
          ? {}
          : { script: d.script!, requires: d.requires ?? [], timeout_seconds: d.timeout_seconds ?? before?.timeout_seconds ?? 600 }),
      };
      let row: RoleRow;
      if (before) {
        const unchanged =
          before.description === fields.description &&
          JSON.stringify(before.attributes) === JSON.stringify(d.attributes ?? {}) &&
          (before.source === 'builtin' ||
            (before.script === d.script && before.requires.join() === (d.requires ?? []).join() && before.timeout_seconds === fields.timeout_seconds));
        // A role file loaded again at every start-up must not make every noderole of it run again.
        if (unchanged) {
          saved.push(toRole(before));
          continue;
        }
        [row] = await trx('roles')
          .where({ name: d.name })
          .update({ ...fields, revision: trx.raw('revision + 1'), updated_at: trx.fn.now(), ...(before.source === 'builtin' ? {} : { source }) })
          .returning('*');
      } else {
        [row] = await trx('roles').insert({ name: d.name, kind: 'script', source, ...fields }).returning('*');
      }
      saved.push(toRole(row));
    }
    return saved;
  });
}

/** Deletes a role nothing uses: refused for a built-in role, one bound to a node, or one another role requires. */
export async function deleteRole(knex: Knex, name: string): Promise<void> {
  await knex.transaction(async (trx) => {
    await trx.raw('select pg_advisory_xact_lock(?)', [ROLES_LOCK]);
    const role = await trx<RoleRow>('roles').where({ name }).first();
    if (!role) throw new NotFound(`no role ${name}`, { role: name });
    if (role.source === 'builtin') throw new Conflict(`role ${name} is built in and cannot be deleted`, { role: name });
    const requiredBy: string[] = (await trx('roles').select('name').whereRaw('? = any(requires)', [name]).orderBy('name')).map((r) => r.name);
    if (requiredBy.length > 0) throw new Conflict(`role ${name} is required by ${requiredBy.join(', ')}`, { role: name, required_by: requiredBy });
    const bound = await trx('noderoles').select('hostname', 'deployment').where({ role: name }).orderBy('id').limit(10);
    if (bound.length > 0) {
      throw new Conflict(`role ${name} is bound to ${bound.map((b) => `${b.hostname} (${b.deployment})`).join(', ')}; unbind it first`, { role: name });
    }
    await trx('deployment_roles').where({ role: name }).delete();
    await trx('roles').where({ name }).delete();
  });
}
