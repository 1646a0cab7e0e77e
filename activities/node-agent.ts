import { ApplicationFailure } from '@temporalio/common';
import type { Knex } from 'knex';
import { getNode } from '../src/db/nodes-repo';
import { PinnedKeyMismatch } from '../src/identity/pinned-tls';
import { agentEndpoint, type AgentEndpoint } from '../src/agent-client';

/**
 * Does work against a node's agent: the node must be in the inventory and run an accepted agent, and
 * a changed key is a security event, not a blip, so it is never retried.
 */
export async function withNodeAgent<T>(knex: Knex, hostname: string, work: (agent: AgentEndpoint) => Promise<T>): Promise<T> {
  const node = await getNode(knex, hostname);
  if (!node) throw ApplicationFailure.nonRetryable(`node ${hostname} is not in the inventory`, 'NotFound');
  try {
    return await work(agentEndpoint(node));
  } catch (err) {
    if (err instanceof PinnedKeyMismatch) throw ApplicationFailure.nonRetryable(`${hostname}: ${err.message}`, 'PinnedKeyMismatch');
    throw err;
  }
}
