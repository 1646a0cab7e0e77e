import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import { getClaim } from '../db/claims-repo';
import { getNode, recordAnnouncement, type NodeRecord } from '../db/nodes-repo';
import { queueTask, queuedAcceptOf, withdrawQueuedTask } from '../db/tasks-repo';
import { BadRequest, Conflict, FingerprintMismatch, InvalidState, NotFound, Unauthorized } from '../domain/errors';
import { allowedVerbs, nextState, refusal } from '../domain/states';
import { parseAgentPublicKey } from '../identity/agent-public-key';
import { signatureProblem } from '../identity/request-signature';
import { UNHELD_PUBLIC_KEY } from '../identity/unheld-key';
import type { AnnounceRequest, AnnounceResponse } from '../protocol';
import type { NodeWorkflows } from '../temporal/node-workflows';
import type { CommandResult } from '../../workflows/definitions';

/** What the transport hands over to check an agent's signature. */
export interface SignedRequest {
  method: string;
  path: string;
  rawBody: string;
  timestamp: string | undefined;
  signature: string | undefined;
}

/** The node verbs, whatever the transport: REST routes call these and only map results. */
export class NodeService {
  constructor(
    private readonly knex: Knex,
    private readonly workflows: NodeWorkflows,
    private readonly serverFingerprint: string,
    /** Tells a running install that its host announced (BootService.announced); absent without provisioning. */
    private readonly installAnnounced?: (hostname: string, fingerprint: string, address: string, rejoined: boolean) => Promise<void>,
  ) {}

  /** An agent says who it is. It proves it holds the key it shows by signing the request with it. */
  async announce(request: AnnounceRequest, signed: SignedRequest): Promise<{ created: boolean; response: AnnounceResponse }> {
    const parsed = parseAgentPublicKey(request.public_key);
    if ('problem' in parsed) throw new BadRequest(`public_key ${parsed.problem}`, { field: 'public_key' });
    if (parsed.fingerprint !== request.fingerprint) {
      throw new BadRequest(`fingerprint ${request.fingerprint} is not the fingerprint of public_key (${parsed.fingerprint})`, { field: 'fingerprint' });
    }
    verifySignature(parsed.pem, signed);
    let announced: Awaited<ReturnType<typeof recordAnnouncement>>;
    try {
      announced = await recordAnnouncement(this.knex, {
        hostname: request.hostname,
        fingerprint: parsed.fingerprint,
        // Only the key re-exported from what was parsed is stored, never the text as sent.
        publicKey: parsed.pem,
        address: request.address,
      });
    } catch (err) {
      // Any other key than the one the installer reported stays out, and is reported on the node.
      if (err instanceof Conflict && this.installAnnounced && (await getNode(this.knex, request.hostname))?.state === 'deploying') {
        await this.installAnnounced(request.hostname, parsed.fingerprint, request.address, false);
      }
      throw err;
    }
    const { node, isNew } = announced;
    if (node.state === 'deploying' && this.installAnnounced) await this.installAnnounced(node.hostname, parsed.fingerprint, request.address, true);
    return {
      created: isNew,
      response: {
        hostname: node.hostname,
        state: node.state,
        accepted: node.state !== 'unmanaged',
        server_fingerprint: this.serverFingerprint,
      },
    };
  }

  /** Accepting is local (Skyring): nothing goes to the node, so it works while the node is down. */
  async accept(hostname: string, fingerprint: string): Promise<CommandResult> {
    const node = await this.require(hostname);
    // Before acceptance the key is chosen among the claims; the transition checks again, in its transaction.
    const known = node.state === 'unmanaged' ? (await getClaim(this.knex, hostname, fingerprint))?.status === 'pending' : node.fingerprint === fingerprint;
    if (!known) {
      throw new FingerprintMismatch(`fingerprint ${fingerprint} does not match the key ${hostname} announced`, { field: 'fingerprint' });
    }
    if (!nextState(node.state, 'accept')) throw new InvalidState(refusal(hostname, node.state, 'accept'), { state: node.state, allowed: allowedVerbs(node.state) });
    const queued = await queuedAcceptOf(this.knex, hostname);
    if (queued) throw new Conflict(`${hostname} is being accepted already (task ${queued})`, { state: node.state, task_id: queued });
    // Durable at the 202: the task is written first, then handed to the workflow without waiting for a
    // worker (the workflow checks state and key again when it applies it, in the transition's transaction).
    const taskId = randomUUID();
    await queueTask(this.knex, { id: taskId, kind: 'accept', hostname });
    try {
      await this.workflows.requestAccept(hostname, node.state, taskId, fingerprint);
    } catch (err) {
      // Not taken: withdrawn, the task can never start (the workflow starts only a queued one). If the
      // workflow claimed it first, the signal did get through and the accept is under way.
      if (await withdrawQueuedTask(this.knex, taskId, `not started: ${(err as Error).message}`)) throw err;
    }
    return { task_id: taskId, state: node.state };
  }

  async reinitialize(hostname: string): Promise<CommandResult> {
    const node = await this.require(hostname);
    // The state rule is the workflow's (its update validator reads the table).
    return this.workflows.reinitialize(hostname, node.state);
  }

  /** The agent's one-time message after acceptance, signed with the accepted key. */
  async ready(hostname: string, signed: SignedRequest): Promise<{ hostname: string; state: string }> {
    const node = await getNode(this.knex, hostname);
    // An unknown host, or one with no key, is checked against a key nobody holds: it gets the very answer a
    // wrong signature gets, so an unauthenticated caller cannot tell which host names exist. A missing
    // node therefore never reaches the guard below, which is there for the type checker.
    verifySignature(node?.publicKey ?? UNHELD_PUBLIC_KEY, signed);
    if (!node) throw new Unauthorized('agent request not authenticated');
    if (node.state === 'unmanaged') throw new Conflict(`${hostname} has not been accepted yet`, { state: node.state });
    await this.workflows.ready(hostname);
    return { hostname, state: node.state };
  }

  async require(hostname: string): Promise<NodeRecord> {
    const node = await getNode(this.knex, hostname);
    if (!node) throw new NotFound(`no node ${hostname}`, { hostname });
    return node;
  }
}

function verifySignature(publicKey: string, signed: SignedRequest): void {
  const problem = signatureProblem(publicKey, signed.method, signed.path, signed.rawBody, signed.timestamp, signed.signature);
  if (problem) throw new Unauthorized(`agent request not authenticated: ${problem}`);
}
