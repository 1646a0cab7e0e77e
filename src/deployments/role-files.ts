import fs from 'node:fs/promises';
import path from 'node:path';
import type { Knex } from 'knex';
import { parse as parseYaml } from 'yaml';
import { ConfigError } from '../config';
import { DomainError } from '../domain/errors';
import { log } from '../log';
import { saveRoles, type RoleDefinition } from './roles-repo';
import { createRoleSchema } from './schemas';

const ROLE_FILE = /\.(json|ya?ml)$/;

/**
 * Loads ROLES_DIR: each *.json, *.yaml or *.yml is one role (the fields of POST /api/v1/roles; the name
 * defaults to the file's). The set is checked as a whole and saved in one transaction; a role whose
 * definition did not change keeps its revision, so restarting never re-runs noderoles. A broken file
 * stops the start-up, naming it, as a bad setting does.
 */
export async function loadRoleFiles(knex: Knex, dir: string): Promise<number> {
  let names: string[];
  try {
    names = (await fs.readdir(dir)).filter((n) => ROLE_FILE.test(n)).sort();
  } catch (err) {
    throw new ConfigError(`ROLES_DIR=${dir} cannot be read: ${(err as Error).message}`);
  }
  const definitions: RoleDefinition[] = [];
  for (const name of names) {
    const file = path.join(dir, name);
    let raw: unknown;
    try {
      const text = await fs.readFile(file, 'utf8');
      raw = name.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
    } catch (err) {
      throw new ConfigError(`role file ${file} is not valid ${name.endsWith('.json') ? 'JSON' : 'YAML'}: ${(err as Error).message}`);
    }
    const withName = raw && typeof raw === 'object' && !Array.isArray(raw) ? { name: name.replace(ROLE_FILE, ''), ...raw } : raw;
    const parsed = createRoleSchema.safeParse(withName);
    if (!parsed.success) {
      throw new ConfigError(`role file ${file}: ${parsed.error.issues.map((i) => `${i.path.join('.') || 'file'} ${i.message}`).join('; ')}`);
    }
    definitions.push(parsed.data);
  }
  if (definitions.length === 0) return 0;
  try {
    await saveRoles(knex, definitions, 'upsert', 'file');
  } catch (err) {
    if (err instanceof DomainError && err.status < 500) throw new ConfigError(`ROLES_DIR=${dir}: ${err.message}`);
    throw err;
  }
  log.info(`loaded ${definitions.length} role(s) from ${dir}`);
  return definitions.length;
}
