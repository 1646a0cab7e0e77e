import { ApplicationFailure } from '@temporalio/common';
import type { WorkflowClient } from '@temporalio/client';
import type { Knex } from 'knex';
import type { DiscoverConfig } from '../src/config';
import { getClaim } from '../src/db/claims-repo';
import { getNode } from '../src/db/nodes-repo';
import { hostnamesOfTask } from '../src/db/operations-repo';
import { sshAddressOf } from '../src/ssh/address';
import type { SshClientKey } from '../src/ssh/client-key';
import {
  finishDiscovery,
  getDiscovery,
  getKnownHost,
  memberAt,
  recordFirstHostKey,
  setDiscoveryStep,
  startDiscovery,
  touchKnownHost,
} from '../src/ssh/discoveries-repo';
import { JoinStepFailed, runJoinSession, type HostKeyExpectation, type JoinStep } from '../src/ssh/join-session';
import type { JoinDocument } from '../src/agent/join-document';
import { discoverAddress } from '../workflows/discover-address';
import { discoverWorkflowId, JOIN_STEP_FAILED } from '../workflows/definitions';
import { keepAlive } from './heartbeat';

export interface DiscoveryDeps {
  knex: Knex;
  discover: DiscoverConfig;
  sshClientKey: SshClientKey;
  /** The fingerprint joined agents pin: the server's own key. */
  serverFingerprint: string;
  workflowClient: WorkflowClient;
  taskQueue: string;
  /** Accepts a node under the key its join vouched for, as an operator's accept would (Skyring flow from there). */
  acceptNode(hostname: string, fingerprint: string, cause: string): Promise<void>;
}

/** Where a discovery stands after a look at its node. */
export type JoinedNodeCheck =
  | { done: true }
  | { done: false; waitingFor: 'announce' | 'initialize' };

export function createDiscoveryActivities(deps: DiscoveryDeps) {
  const { knex } = deps;

  return {
    /** The request's side: one workflow per address, started in pages; a retry finds those already started. */
    startDiscoveries: keepAlive(async (input: { taskId: string }): Promise<number> => {
      let afterId = 0;
      let started = 0;
      for (;;) {
        const page = await hostnamesOfTask(knex, input.taskId, { afterId, limit: 500 });
        if (page.length === 0) return started;
        for (const op of page) {
          await deps.workflowClient.start(discoverAddress, {
            workflowId: discoverWorkflowId(op.id),
            taskQueue: deps.taskQueue,
            args: [{ taskId: input.taskId, operationId: op.id, announceTimeoutMs: deps.discover.announceTimeoutMs }],
            workflowIdConflictPolicy: 'USE_EXISTING',
          });
        }
        started += page.length;
        afterId = page[page.length - 1]!.id;
      }
    }),

    /**
     * Takes the address's row; an address that already brought in a node still managed under the key its
     * join reported is done at once, as already_member, and nothing connects to it.
     */
    async beginDiscovery(input: { operationId: number }): Promise<{ done: boolean }> {
      const discovery = await requireDiscovery(knex, input.operationId);
      await startDiscovery(knex, input.operationId);
      const member = await memberAt(knex, discovery.address);
      if (!member) return { done: false };
      await finishDiscovery(knex, input.operationId, { status: 'succeeded', outcome: 'already_member', result: { hostname: member.hostname, state: member.state } });
      return { done: true };
    },

    /** The one SSH connection: host key, auth, sudo check, one exec of the join program. */
    joinOverSsh: keepAlive(async (input: { operationId: number }): Promise<{ hostname: string; fingerprint: string; status: string }> => {
      const discovery = await requireDiscovery(knex, input.operationId);
      const address = sshAddressOf(discovery.address);
      let hostKey: HostKeyExpectation;
      if (discovery.policy === 'pinned') {
        hostKey = { policy: 'pinned', fingerprint: discovery.pinned!.fingerprint, type: discovery.pinned!.type };
      } else {
        const known = await getKnownHost(knex, address.key);
        hostKey = { policy: 'tofu', known: known ? { fingerprint: known.fingerprint, type: known.type } : null };
      }
      if (!deps.discover.serverUrl) {
        throw ApplicationFailure.create({
          message: 'no URL to give joined agents: set AGENT_SERVER_URL (this worker runs without the API, and PORT is 0)',
          type: JOIN_STEP_FAILED,
          nonRetryable: true,
          details: [{ step: 'join', code: 'no_server_url' }],
        });
      }
      const sandbox = deps.discover.sandbox?.replaceAll('{host}', address.host).replaceAll('{port}', String(address.port));
      const document: JoinDocument = {
        cluster_name: deps.discover.clusterName,
        server_url: deps.discover.serverUrl,
        server_fingerprint: deps.serverFingerprint,
        ...(discovery.hostnameHint ? { hostname: discovery.hostnameHint } : {}),
        start_agent: true,
        // A sandboxed node shares this machine: its agent takes a free port on the address it was reached at.
        agent_listen: sandbox ? `${address.host.includes(':') ? `[${address.host}]` : address.host}:0` : `0.0.0.0:${deps.discover.agentPort}`,
        advertise: address.host,
        ...(sandbox ? { sandbox } : {}),
        ...(Object.keys(discovery.extraVars).length > 0 ? { extra_vars: discovery.extraVars } : {}),
      };
      await setDiscoveryStep(knex, input.operationId, 'connect');
      try {
        const { hostKey: seen, answer } = await runJoinSession({
          address,
          user: discovery.user,
          privateKey: deps.sshClientKey.privateKey,
          agentSocket: deps.discover.agentSocket,
          hostKey,
          recordFirstKey: async (key) => {
            const recorded = await recordFirstHostKey(knex, address.key, key);
            return { fingerprint: recorded.fingerprint, type: recorded.type };
          },
          connectTimeoutMs: deps.discover.connectTimeoutMs,
          commandTimeoutMs: deps.discover.commandTimeoutMs,
          joinCommand: deps.discover.joinCommand,
          document,
        });
        if (discovery.policy === 'tofu') await touchKnownHost(knex, address.key);
        await setDiscoveryStep(knex, input.operationId, 'announce', { hostKey: seen.fingerprint, hostname: answer.hostname, fingerprint: answer.fingerprint });
        // "Already a member" on the machine's side is a member here only if the service manages it under that
        // key; otherwise (a retried join after a worker crash, a service that lost its inventory) it joins now.
        const node = await getNode(knex, answer.hostname);
        const member = answer.status === 'already_member' && node !== undefined && node.state !== 'unmanaged' && node.fingerprint === answer.fingerprint;
        return { hostname: answer.hostname, fingerprint: answer.fingerprint, status: member ? 'already_member' : 'joined' };
      } catch (err) {
        if (err instanceof JoinStepFailed) {
          throw ApplicationFailure.create({ message: err.message, type: JOIN_STEP_FAILED, nonRetryable: true, details: [{ step: err.step, code: err.code ?? null }] });
        }
        throw err;
      }
    }),

    /**
     * The join vouched for a key over the verified channel: when that host name announces with that key,
     * the node is accepted with no operator; any other key claiming the name stays unmanaged and is
     * reported on the task. Then the node initializes as after any accept, to active or failed.
     */
    async checkJoinedNode(input: { operationId: number; joinStatus: string }): Promise<JoinedNodeCheck> {
      const discovery = await requireDiscovery(knex, input.operationId);
      if (discovery.status === 'succeeded' || discovery.status === 'failed') return { done: true };
      const hostname = discovery.hostname!;
      const vouched = discovery.agentFingerprint!;
      const node = await getNode(knex, hostname);
      if (!node) return { done: false, waitingFor: 'announce' };
      if (node.state === 'unmanaged') {
        const claim = await getClaim(knex, hostname, vouched);
        if (!claim) return { done: false, waitingFor: 'announce' };
        if (claim.status === 'rejected') {
          return fail(knex, input.operationId, 'announce', `the key ${vouched} that ${hostname}'s join reported was rejected by an operator`);
        }
        await deps.acceptNode(hostname, vouched, `accepted on the key its SSH join at ${discovery.address} reported (task ${discovery.taskId})`);
        return { done: false, waitingFor: 'initialize' };
      }
      if (node.fingerprint !== vouched) {
        return fail(knex, input.operationId, 'announce', `${hostname} is managed under the key ${node.fingerprint}, not ${vouched} that its join reported`);
      }
      if (node.state === 'active') {
        const outcome = input.joinStatus === 'already_member' ? 'already_member' : 'joined';
        // Other keys that announced this host name stayed out (the accept rejected them): the task names them.
        const refused = await knex('node_claims').select('fingerprint', 'address').where({ hostname, status: 'rejected' }).orderBy('first_seen_at');
        await finishDiscovery(knex, input.operationId, {
          status: 'succeeded',
          outcome,
          result: { state: node.state, fingerprint: vouched, ...(refused.length > 0 ? { refused_keys: refused } : {}) },
        });
        return { done: true };
      }
      if (node.state === 'failed') {
        return fail(knex, input.operationId, 'initialize', `${hostname} joined but its initialization failed: ${node.lastError ?? 'no detail'}`);
      }
      if (node.state === 'initializing') return { done: false, waitingFor: 'initialize' };
      // Managed in another state under the same key: a member already (e.g. commissioned), nothing to redo.
      await finishDiscovery(knex, input.operationId, { status: 'succeeded', outcome: 'already_member', result: { state: node.state, fingerprint: vouched } });
      return { done: true };
    },

    async failDiscovery(input: { operationId: number; step: JoinStep; error: string }): Promise<void> {
      await fail(knex, input.operationId, input.step, input.error);
    },
  };
}

async function requireDiscovery(knex: Knex, operationId: number) {
  const discovery = await getDiscovery(knex, operationId);
  if (!discovery) throw ApplicationFailure.nonRetryable(`discovery ${operationId} does not exist`, 'NotFound');
  return discovery;
}

async function fail(knex: Knex, operationId: number, step: JoinStep, error: string): Promise<{ done: true }> {
  await finishDiscovery(knex, operationId, { status: 'failed', step, error });
  return { done: true };
}

export type DiscoveryActivities = ReturnType<typeof createDiscoveryActivities>;
