import { heartbeat } from '@temporalio/activity';
import type { Knex } from 'knex';
import { driverNode, recordPowerState } from '../src/db/enrollment-repo';
import { forEachLimited } from '../src/concurrency';
import { getDriver } from '../src/drivers';
import type { AgentClient } from './agent-client';

/** After this many failed syncs in a row a node has a power fault (Ironic's power state sync). */
export const POWER_FAULT_AFTER = 3;

/** Adopted nodes whose power state is enforced: not while they are being enrolled or adopted. */
const NOT_ENFORCED = ['enroll', 'verifying', 'manageable', 'adopting', 'adopt failed'];

export function createPowerSyncActivities(deps: { knex: Knex; agents: AgentClient }) {
  const { knex } = deps;
  return {
    /**
     * One sweep: read every enforced node's power; correct drift; count failures, raise a fault after
     * POWER_FAULT_AFTER and clear it when the BMC answers again. Events list the nodes they concern.
     */
    async syncPowerStates(): Promise<{ corrected: string[]; faulted: string[]; cleared: string[] }> {
      const rows = await knex('nodes')
        .select('hostname', 'enforced_power_state', 'power_fault', 'power_sync_failures')
        .whereNotNull('enforced_power_state')
        .whereNotNull('driver')
        .whereNotNull('boot_config')
        .whereNotIn('state', NOT_ENFORCED)
        .orderBy('hostname');
      const corrected: string[] = [];
      const faulted: string[] = [];
      const cleared: string[] = [];
      await forEachLimited(rows, 8, async (row, index) => {
        heartbeat(index);
        try {
          const { driver: name, node } = await driverNode(knex, row.hostname);
          const driver = getDriver(name)!;
          const actual = await driver.getPowerState(node, { agents: deps.agents });
          if (actual !== row.enforced_power_state) {
            await driver.setPowerState(node, row.enforced_power_state, { agents: deps.agents });
            corrected.push(row.hostname);
          }
          await recordPowerState(knex, row.hostname, row.enforced_power_state);
          if (row.power_fault) cleared.push(row.hostname);
          await knex('nodes')
            .where({ hostname: row.hostname })
            .update({
              power_sync_failures: 0,
              power_fault: false,
              last_error: knex.raw("case when last_error like 'power sync:%' then null else last_error end"),
            });
        } catch (err) {
          const failures = row.power_sync_failures + 1;
          const fault = failures >= POWER_FAULT_AFTER;
          if (fault && !row.power_fault) faulted.push(row.hostname);
          await knex('nodes')
            .where({ hostname: row.hostname })
            .update({ power_sync_failures: failures, power_fault: fault, ...(fault ? { last_error: `power sync: ${(err as Error).message}` } : {}) });
        }
      });
      const events = [
        ['power_corrected', corrected],
        ['power_fault', faulted],
        ['power_fault_cleared', cleared],
      ] as const;
      for (const [type, nodes] of events) if (nodes.length > 0) await knex('cluster_events').insert({ type, nodes: [...nodes].sort() });
      return { corrected, faulted, cleared };
    },
  };
}
