import { heartbeat } from '@temporalio/activity';
import type { Knex } from 'knex';
import { forEachLimited } from '../src/concurrency';
import { driverNode } from '../src/db/enrollment-repo';
import { enforcedNodes, enforcedPowerOf, recordPowerAnswer, recordPowerEvent, recordPowerFailure } from '../src/db/power-repo';
import { getDriver } from '../src/drivers';
import { DriverError, type PowerState } from '../src/drivers/types';
import { NODE_SIGNALS } from '../workflows/definitions';
import type { SecretBox } from '../src/secrets/secret-box';
import type { AgentClient } from '../src/agent-client';
import { keepAlive } from './heartbeat';
import type { NodeSignaller } from './operations';

export interface PowerSyncDeps {
  knex: Knex;
  agents: AgentClient;
  /** Opens the node's driver secrets, sealed in the database. */
  secretBox: SecretBox;
  signalNodes: NodeSignaller;
  /** BMCs read at once in a sweep. */
  powerSyncParallel: number;
  /** A BMC that has not answered within this is counted as failed for this sweep; the others go on. */
  powerSyncNodeTimeoutMs: number;
}

export function createPowerSyncActivities(deps: PowerSyncDeps) {
  const { knex } = deps;

  /** The power state the node's BMC reports, within the per-node deadline (the driver's call is aborted after it). */
  async function readPower(hostname: string): Promise<PowerState> {
    const { driver: name, node } = await driverNode(knex, deps.secretBox, hostname);
    const driver = getDriver(name)!;
    const signal = AbortSignal.timeout(deps.powerSyncNodeTimeoutMs);
    const timedOut = new Promise<never>((_, reject) =>
      signal.addEventListener('abort', () => reject(new DriverError(`BMC did not answer within ${deps.powerSyncNodeTimeoutMs} ms`)), { once: true }),
    );
    return Promise.race([driver.getPowerState(node, { agents: deps.agents, signal }), timedOut]);
  }

  return {
    /**
     * One sweep (Ironic's power state sync). It only reads: each enforced node's BMC in parallel, each
     * within its own deadline, so one dead BMC costs its own lane and nothing else. A node whose BMC
     * differs from its enforced state is told so; its own workflow reads again and corrects it, in turn
     * with its other work. Failures count towards a power fault; an answer clears it.
     */
    async syncPowerStates(): Promise<{ checked: number; drifted: string[]; faulted: string[]; cleared: string[] }> {
      const nodes = await enforcedNodes(knex);
      const drifted: string[] = [];
      const faulted: string[] = [];
      const cleared: string[] = [];
      let done = 0;
      await forEachLimited(nodes, deps.powerSyncParallel, async (node) => {
        try {
          const actual = await readPower(node.hostname);
          if (await recordPowerAnswer(knex, node.hostname, actual)) cleared.push(node.hostname);
          if (actual !== node.enforcedPowerState) drifted.push(node.hostname);
        } catch (err) {
          if (await recordPowerFailure(knex, node.hostname, (err as Error).message)) faulted.push(node.hostname);
        }
        heartbeat(++done);
      });
      await recordPowerEvent(knex, 'power_fault', faulted);
      await recordPowerEvent(knex, 'power_fault_cleared', cleared);
      await deps.signalNodes(drifted, NODE_SIGNALS.powerDrift);
      return { checked: nodes.length, drifted, faulted, cleared };
    },

    /**
     * Runs in the node's own workflow, never beside another of its power changes: reads the BMC again
     * and, if it still differs from the enforced state as recorded now, sets it back.
     */
    correctPowerDrift: keepAlive(async (input: { name: string }): Promise<'corrected' | 'in_sync' | 'failed'> => {
      const enforced = await enforcedPowerOf(knex, input.name);
      if (enforced === null) return 'in_sync';
      try {
        const { driver: name, node } = await driverNode(knex, deps.secretBox, input.name);
        const driver = getDriver(name)!;
        const ctx = { agents: deps.agents };
        const drifted = (await driver.getPowerState(node, ctx)) !== enforced;
        if (drifted) await driver.setPowerState(node, enforced, ctx);
        if (await recordPowerAnswer(knex, input.name, enforced)) await recordPowerEvent(knex, 'power_fault_cleared', [input.name]);
        if (!drifted) return 'in_sync';
        await recordPowerEvent(knex, 'power_corrected', [input.name]);
        return 'corrected';
      } catch (err) {
        if (await recordPowerFailure(knex, input.name, (err as Error).message)) await recordPowerEvent(knex, 'power_fault', [input.name]);
        return 'failed';
      }
    }),
  };
}
