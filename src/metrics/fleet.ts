import type { Knex } from 'knex';
import { Gauge, type Registry } from 'prom-client';
import type { SlotCaps } from '../db/operations-repo';
import { NODE_STATES, slotPoolOf, type OperationKind, type SlotPool } from '../domain/states';

const POOLS: readonly SlotPool[] = ['general', 'install'];
const OPEN_STATUSES = ['queued', 'running', 'waiting'] as const;

/**
 * The fleet as the database has it, read at scrape time: two grouped counts (nodes by state, open
 * operations by kind and status). Neither reads a row per node into this process; at 100,000 nodes
 * the first is one pass over the nodes table inside PostgreSQL, the second reads only open operations
 * (the operations_open partial index). Every state and pool is listed, at 0 too, so a series never vanishes.
 */
export function fleetGauges(knex: Knex, caps: SlotCaps | undefined, registry: Registry): { refresh(): Promise<void> } {
  const registers = [registry];
  const nodes = new Gauge({ name: 'node_lifecycle_nodes', help: 'Nodes by lifecycle state', labelNames: ['state'] as const, registers });
  const reachable = new Gauge({ name: 'node_lifecycle_nodes_reachable', help: 'Nodes whose agent was heard from within DISAPPEAR_AFTER', registers });
  const unreachable = new Gauge({ name: 'node_lifecycle_nodes_unreachable', help: 'Nodes whose agent went silent for longer than DISAPPEAR_AFTER', registers });
  const powerFaults = new Gauge({ name: 'node_lifecycle_nodes_power_fault', help: 'Nodes with a power fault now (their BMC failed 3 reads or corrections in a row)', registers });
  const operations = new Gauge({
    name: 'node_lifecycle_operations',
    help: 'Open operations by slot pool and status (queued: not started on its node; running; waiting: done, its request deciding)',
    labelNames: ['pool', 'status'] as const,
    registers,
  });
  const slotsUsed = new Gauge({ name: 'node_lifecycle_operation_slots_used', help: 'Operations holding a slot of their pool', labelNames: ['pool'] as const, registers });
  const slotsWanted = new Gauge({ name: 'node_lifecycle_operation_slots_wanted', help: 'Operations waiting for a slot of their pool (the cap is reached)', labelNames: ['pool'] as const, registers });
  const slotsCap = new Gauge({
    name: 'node_lifecycle_operation_slots_cap',
    help: 'The cap of each slot pool (MAX_CONCURRENT_OPERATIONS for general, MAX_CONCURRENT_DEPLOYS for install)',
    labelNames: ['pool'] as const,
    registers,
  });

  return {
    async refresh() {
      const [byState, open] = await Promise.all([
        knex('nodes')
          .select('state')
          .count({ total: '*' })
          .select(
            knex.raw('count(*) filter (where reachable) as reachable'),
            knex.raw('count(*) filter (where reachable = false) as unreachable'),
            knex.raw('count(*) filter (where power_fault) as power_faults'),
          )
          .groupBy('state') as Promise<{ state: string; total: string; reachable: string; unreachable: string; power_faults: string }[]>,
        knex('operations')
          .select('kind', 'status')
          .count({ total: '*' })
          .select(
            knex.raw('count(*) filter (where holds_slot) as holding'),
            knex.raw('count(*) filter (where wants_slot_since is not null and not holds_slot) as wanting'),
          )
          .whereIn('status', OPEN_STATUSES)
          .groupBy('kind', 'status') as Promise<{ kind: OperationKind | 'discover'; status: string; total: string; holding: string; wanting: string }[]>,
      ]);

      for (const state of NODE_STATES) nodes.set({ state }, 0);
      let sums = { reachable: 0, unreachable: 0, powerFaults: 0 };
      for (const row of byState) {
        nodes.set({ state: row.state }, Number(row.total));
        sums = {
          reachable: sums.reachable + Number(row.reachable),
          unreachable: sums.unreachable + Number(row.unreachable),
          powerFaults: sums.powerFaults + Number(row.power_faults),
        };
      }
      reachable.set(sums.reachable);
      unreachable.set(sums.unreachable);
      powerFaults.set(sums.powerFaults);

      for (const pool of POOLS) {
        for (const status of OPEN_STATUSES) operations.set({ pool, status }, 0);
        slotsUsed.set({ pool }, 0);
        slotsWanted.set({ pool }, 0);
        if (caps) slotsCap.set({ pool }, caps[pool]);
      }
      for (const row of open) {
        const pool = slotPoolOf(row.kind);
        operations.inc({ pool, status: row.status }, Number(row.total));
        slotsUsed.inc({ pool }, Number(row.holding));
        slotsWanted.inc({ pool }, Number(row.wanting));
      }
    },
  };
}

