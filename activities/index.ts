import { ApplicationFailure } from '@temporalio/common';
import { sweepReachability } from '../src/db/events-repo';
import { saveFacts, setLastError } from '../src/db/nodes-repo';
import { applyTransition, type TransitionOutcome, type TransitionRequest } from '../src/db/transitions-repo';
import { AGENT_PATHS, type PingResponse } from '../src/protocol';
import type { AgentEndpoint } from '../src/agent-client';
import { asFailure } from './failures';
import { keepAlive } from './heartbeat';
import { withNodeAgent } from './node-agent';
import { createOperationActivities, type OperationDeps } from './operations';
import { createPowerSyncActivities, type PowerSyncDeps } from './power-sync';
import { createInstallActivities, type InstallDeps } from './install';
import { createProvisioningActivities } from './provisioning';
import { createDiscoveryActivities, type DiscoveryDeps } from './discovery';
import { createBulkAcceptActivities } from './bulk-accept';
import { createAnnealerActivities } from './annealer';

export interface ActivityDeps extends OperationDeps, PowerSyncDeps, InstallDeps, DiscoveryDeps {
  monitoringEndpoint: string;
  nodeServices: string[];
}

/** Activities get their dependencies from this factory, so tests hand in real instances of their own. */
export function createActivities(deps: ActivityDeps) {
  const { knex, agents } = deps;

  const onAgent = <T>(hostname: string, work: (node: AgentEndpoint) => Promise<T>) => withNodeAgent(knex, hostname, work);

  return {
    ...createOperationActivities(deps),
    ...createProvisioningActivities(deps),
    ...createPowerSyncActivities(deps),
    ...createInstallActivities(deps),
    ...createDiscoveryActivities(deps),
    ...createBulkAcceptActivities(deps),
    ...createAnnealerActivities(deps),

    /** The provisioner workflow's one step: dnsmasq's files made to say what the database says. */
    reconcileBootFiles: keepAlive(async (): Promise<{ written: string[] }> => {
      if (!deps.provisioner) return { written: [] };
      return { written: await deps.provisioner.reconcile() };
    }),

    async transitionNode(req: TransitionRequest): Promise<TransitionOutcome> {
      try {
        return await applyTransition(knex, req);
      } catch (err) {
        throw asFailure(err);
      }
    },

    async sweepReachability(input: { silentMs: number }): Promise<{ disappeared: string[]; discovered: string[] }> {
      return sweepReachability(knex, input.silentMs);
    },

    async recordLastError(input: { hostname: string; error: string | null }): Promise<void> {
      await setLastError(knex, input.hostname, input.error);
    },

    pingNode: keepAlive(async (input: { hostname: string }): Promise<PingResponse> => {
      return onAgent(input.hostname, async (node) => {
        const pong = await agents.call<PingResponse>(node, 'GET', AGENT_PATHS.ping);
        if (pong.hostname !== input.hostname) {
          throw ApplicationFailure.nonRetryable(`agent at ${node.address} says it is ${pong.hostname}, not ${input.hostname}`, 'HostnameMismatch');
        }
        return pong;
      });
    }),

    /** Stores the facts and returns only a summary: full facts stay out of the workflow history. */
    gatherFacts: keepAlive(async (input: { hostname: string }): Promise<{ keys: string[] }> => {
      return onAgent(input.hostname, async (node) => {
        const facts = await agents.call<Record<string, unknown>>(node, 'GET', AGENT_PATHS.facts);
        await saveFacts(knex, input.hostname, facts);
        return { keys: Object.keys(facts) };
      });
    }),

    /** Idempotent on the agent: the same file with the same content, so a retry after a worker crash is harmless. */
    configureMonitoring: keepAlive(async (input: { hostname: string }): Promise<{ config_file: string }> => {
      return onAgent(input.hostname, (node) => agents.call(node, 'POST', AGENT_PATHS.monitoring, { endpoint: deps.monitoringEndpoint }));
    }),

    /** Idempotent on the agent: starting a running service leaves it running. */
    startServices: keepAlive(async (input: { hostname: string }): Promise<{ services: Record<string, string> }> => {
      return onAgent(input.hostname, (node) => agents.call(node, 'POST', AGENT_PATHS.services, { services: deps.nodeServices }));
    }),
  };
}

export type Activities = ReturnType<typeof createActivities>;
