import type { Knex } from 'knex';
import { POWER_NOT_ENFORCED_STATES } from '../domain/states';
import type { PowerState } from '../drivers/types';

/** After this many failed power reads or corrections in a row a node has a power fault (Ironic's power state sync). */
export const POWER_FAULT_AFTER = 3;
const SYNC_ERROR_PREFIX = 'power sync: ';

export interface EnforcedNode {
  hostname: string;
  enforcedPowerState: PowerState;
}

/** The one rule of whose power is enforced: adopted (boot config taken over), with a driver, in use. */
function enforced(knex: Knex) {
  return knex('nodes')
    .select('hostname', 'enforced_power_state')
    .whereNotNull('enforced_power_state')
    .whereNotNull('driver')
    .whereNotNull('boot_config')
    .whereNotIn('state', POWER_NOT_ENFORCED_STATES);
}

/** Every node whose recorded power state is enforced. */
export async function enforcedNodes(knex: Knex): Promise<EnforcedNode[]> {
  const rows = await enforced(knex).orderBy('hostname');
  return rows.map((r) => ({ hostname: r.hostname, enforcedPowerState: r.enforced_power_state }));
}

/** The enforced state of one node as it is now, or null when its power is not enforced (any more). */
export async function enforcedPowerOf(knex: Knex, hostname: string): Promise<PowerState | null> {
  const row = await enforced(knex).where({ hostname }).first();
  return row?.enforced_power_state ?? null;
}

/** The BMC answered: the failure count restarts and a fault clears. Returns true when a fault was cleared. */
export async function recordPowerAnswer(knex: Knex, hostname: string, actual: PowerState): Promise<boolean> {
  return knex.transaction(async (trx) => {
    const before = await trx('nodes').select('power_fault').where({ hostname }).forUpdate().first();
    if (!before) return false;
    await trx('nodes')
      .where({ hostname })
      .update({
        power_state: actual,
        power_sync_failures: 0,
        power_fault: false,
        last_error: trx.raw('case when last_error like ? then null else last_error end', [`${SYNC_ERROR_PREFIX}%`]),
      });
    return Boolean(before.power_fault);
  });
}

/** The BMC did not answer or refused: counts it; returns true when this failure raised the fault. */
export async function recordPowerFailure(knex: Knex, hostname: string, error: string): Promise<boolean> {
  const [row] = await knex('nodes')
    .where({ hostname })
    .update({
      power_sync_failures: knex.raw('power_sync_failures + 1'),
      power_fault: knex.raw('power_sync_failures + 1 >= ?', [POWER_FAULT_AFTER]),
      last_error: knex.raw('case when power_sync_failures + 1 >= ? then ? else last_error end', [POWER_FAULT_AFTER, `${SYNC_ERROR_PREFIX}${error}`]),
    })
    .returning('power_sync_failures');
  return Number(row?.power_sync_failures) === POWER_FAULT_AFTER;
}

export async function recordPowerEvent(knex: Knex, type: 'power_corrected' | 'power_fault' | 'power_fault_cleared', nodes: string[]): Promise<void> {
  if (nodes.length > 0) await knex('cluster_events').insert({ type, nodes: [...nodes].sort() });
}
