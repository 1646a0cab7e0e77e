import type { Knex } from 'knex';
import { log } from '../log';
import { SecretBox } from './secret-box';

type StoredSecrets = Record<string, unknown> | null;

const unsealed = (secrets: StoredSecrets) => Object.values(secrets ?? {}).some((v) => typeof v !== 'string' || !SecretBox.isSealed(v));

/**
 * Run at every start, after the migrations: seals the secrets of rows written before encryption at rest
 * (or by a process of an older version), and warns, by name, of nodes whose secrets this key cannot
 * open, rather than leaving the first power call on each to find out. Idempotent, and safe beside
 * another process doing the same: each row is re-read under its lock and only plain values are sealed.
 */
export async function sealStoredSecrets(knex: Knex, box: SecretBox, keySource: string): Promise<{ sealed: string[]; unreadable: string[] }> {
  const rows: { hostname: string; driver_secrets: StoredSecrets }[] = await knex('nodes').select('hostname', 'driver_secrets').whereNotNull('driver_secrets');
  const sealed: string[] = [];
  const unreadable: string[] = [];
  for (const row of rows) {
    if (unsealed(row.driver_secrets)) {
      if (await sealRow(knex, box, row.hostname)) sealed.push(row.hostname);
    } else if (!opens(box, row.hostname, row.driver_secrets)) {
      unreadable.push(row.hostname);
    }
  }
  if (sealed.length > 0) log.info(`sealed the driver secrets of ${sealed.length} node(s) stored before encryption at rest`);
  if (unreadable.length > 0) {
    const names = unreadable.slice(0, 10).join(', ') + (unreadable.length > 10 ? ` and ${unreadable.length - 10} more` : '');
    log.warn(
      `the driver secrets of ${unreadable.length} node(s) (${names}) do not decrypt with the secrets key from ${keySource}: ` +
        'their power calls will fail until every process of the deployment uses the key they were written with',
    );
  }
  return { sealed, unreadable };
}

async function sealRow(knex: Knex, box: SecretBox, hostname: string): Promise<boolean> {
  return knex.transaction(async (trx) => {
    const row = await trx('nodes').select('driver_secrets').where({ hostname }).forUpdate().first();
    const current = (row?.driver_secrets ?? null) as StoredSecrets;
    if (!unsealed(current)) return false;
    const next = Object.fromEntries(
      Object.entries(current ?? {}).map(([field, value]) => [
        field,
        typeof value === 'string' && SecretBox.isSealed(value) ? value : box.seal(String(value), { node: hostname, field }),
      ]),
    );
    await trx('nodes').where({ hostname }).update({ driver_secrets: JSON.stringify(next) });
    return true;
  });
}

function opens(box: SecretBox, hostname: string, secrets: StoredSecrets): boolean {
  try {
    box.openAll(hostname, (secrets ?? {}) as Record<string, string>);
    return true;
  } catch {
    return false;
  }
}
