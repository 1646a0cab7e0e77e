import type { Knex } from 'knex';
import type { KeyType } from './host-keys';
import type { JoinStep } from './join-session';

/** One address of a discover request, as the queue and the join see it. */
export interface DiscoveryRecord {
  operationId: number;
  taskId: string;
  address: string;
  user: string;
  policy: 'pinned' | 'tofu';
  pinned: { fingerprint: string; type: KeyType | null } | null;
  hostnameHint: string | null;
  step: JoinStep | null;
  hostname: string | null;
  agentFingerprint: string | null;
  extraVars: Record<string, unknown>;
  status: string;
}

export interface DiscoveryRequest {
  taskId: string;
  addresses: { address: string; user: string; pinned: { fingerprint: string; type: KeyType | null } | null; hostname: string | null }[];
  policy: 'pinned' | 'tofu';
  extraVars: Record<string, unknown>;
}

/** Queues a discover request: its task, one operation per address (the slot holder) and its discovery row. */
export async function submitDiscovery(knex: Knex, request: DiscoveryRequest): Promise<void> {
  await knex.transaction(async (trx) => {
    await trx('tasks').insert({
      id: request.taskId,
      kind: 'discover',
      hostname: null,
      status: 'queued',
      details: JSON.stringify({ addresses: request.addresses.length, host_key_policy: request.policy, extra_vars: request.extraVars }),
    });
    const extraVars = JSON.stringify(request.extraVars);
    for (let i = 0; i < request.addresses.length; i += 1000) {
      const page = request.addresses.slice(i, i + 1000);
      const ops: { id: string | number }[] = await trx('operations')
        .insert(page.map(() => ({ task_id: request.taskId, hostname: null, kind: 'discover', status: 'queued', extra_vars: extraVars })))
        .returning(['id']);
      await trx('discoveries').insert(
        page.map((a, n) => ({
          operation_id: ops[n]!.id,
          task_id: request.taskId,
          address: a.address,
          ssh_user: a.user,
          host_key_policy: request.policy,
          pinned_fingerprint: a.pinned?.fingerprint ?? null,
          pinned_type: a.pinned?.type ?? null,
          hostname_hint: a.hostname,
        })),
      );
    }
  });
}

export async function getDiscovery(knex: Knex, operationId: number): Promise<DiscoveryRecord | undefined> {
  const row = await knex('discoveries as d')
    .join('operations as o', 'o.id', 'd.operation_id')
    .select('d.*', 'o.extra_vars', 'o.status')
    .where('d.operation_id', operationId)
    .first();
  if (!row) return undefined;
  return {
    operationId: Number(row.operation_id),
    taskId: row.task_id,
    address: row.address,
    user: row.ssh_user,
    policy: row.host_key_policy,
    pinned: row.pinned_fingerprint ? { fingerprint: row.pinned_fingerprint, type: row.pinned_type } : null,
    hostnameHint: row.hostname_hint,
    step: row.step,
    hostname: row.hostname,
    agentFingerprint: row.agent_fingerprint,
    extraVars: row.extra_vars ?? {},
    status: row.status,
  };
}

/** Marks the discovery's operation running (and its task), unless it already is. */
export async function startDiscovery(knex: Knex, operationId: number): Promise<void> {
  const now = new Date();
  await knex.transaction(async (trx) => {
    const [op] = await trx('operations').where({ id: operationId, status: 'queued' }).update({ status: 'running', started_at: now }).returning(['task_id']);
    if (op) await trx('tasks').where({ id: op.task_id, status: 'queued' }).update({ status: 'running', started_at: now, updated_at: now });
  });
}

export async function setDiscoveryStep(knex: Knex, operationId: number, step: JoinStep, joined?: { hostKey: string; hostname: string; fingerprint: string }) {
  await knex('discoveries')
    .where({ operation_id: operationId })
    .update({
      step,
      ...(joined ? { host_key_fingerprint: joined.hostKey, hostname: joined.hostname, agent_fingerprint: joined.fingerprint } : {}),
    });
}

/**
 * Closes a discovery: its operation succeeded (outcome joined or already_member) or failed in a step.
 * A failure is also put on the node's events when the join named the node.
 */
export async function finishDiscovery(
  knex: Knex,
  operationId: number,
  outcome: { status: 'succeeded'; outcome: 'joined' | 'already_member'; result: Record<string, unknown> } | { status: 'failed'; step: JoinStep; error: string; result?: Record<string, unknown> },
): Promise<void> {
  await knex.transaction(async (trx) => {
    const row = await trx('discoveries').where({ operation_id: operationId }).first().forUpdate();
    const op = await trx('operations').where({ id: operationId }).first();
    if (!row || !op || op.status === 'succeeded' || op.status === 'failed') return;
    const failed = outcome.status === 'failed';
    const result = { address: row.address, hostname: row.hostname, ...outcome.result, ...(failed ? { step: outcome.step } : { outcome: outcome.outcome }) };
    await trx('operations')
      .where({ id: operationId })
      .update({ status: outcome.status, error: failed ? `${outcome.step}: ${outcome.error}` : null, result: JSON.stringify(result), finished_at: new Date() });
    await trx('discoveries')
      .where({ operation_id: operationId })
      .update(failed ? { step: outcome.step, outcome: 'failed' } : { outcome: outcome.outcome });
    if (failed && row.hostname) {
      await trx('node_events').insert({
        hostname: row.hostname,
        type: 'discovery',
        event: `discover_failed`,
        cause: `adding ${row.address} over SSH failed at ${outcome.step}: ${outcome.error}`,
        task_id: row.task_id,
      });
    }
  });
}

/**
 * The node an address already brought in, when it is still managed under the key its join reported:
 * a re-run of the request reports it as a member and connects to nothing.
 */
export async function memberAt(knex: Knex, address: string): Promise<{ hostname: string; state: string } | undefined> {
  return knex('discoveries as d')
    .join('nodes as n', function () {
      this.on('n.hostname', 'd.hostname').andOn('n.fingerprint', 'd.agent_fingerprint');
    })
    .select('n.hostname', 'n.state')
    .where('d.address', address)
    .whereIn('d.outcome', ['joined', 'already_member'])
    .whereNot('n.state', 'unmanaged')
    .orderBy('d.operation_id', 'desc')
    .first();
}

// --- known hosts (tofu) ---

export interface KnownHost {
  address: string;
  type: KeyType;
  fingerprint: string;
  firstSeenAt: Date;
  lastSeenAt: Date;
}

function toKnownHost(row: any): KnownHost {
  return { address: row.address, type: row.key_type, fingerprint: row.fingerprint, firstSeenAt: row.first_seen_at, lastSeenAt: row.last_seen_at };
}

export async function getKnownHost(knex: Knex, address: string): Promise<KnownHost | undefined> {
  const row = await knex('ssh_known_hosts').where({ address }).first();
  return row ? toKnownHost(row) : undefined;
}

/** Records the first key seen at an address; returns the key recorded, which is another when a concurrent first contact won. */
export async function recordFirstHostKey(knex: Knex, address: string, key: { type: KeyType; fingerprint: string }): Promise<KnownHost> {
  await knex('ssh_known_hosts').insert({ address, key_type: key.type, fingerprint: key.fingerprint }).onConflict('address').ignore();
  return (await getKnownHost(knex, address))!;
}

export async function touchKnownHost(knex: Knex, address: string): Promise<void> {
  await knex('ssh_known_hosts').where({ address }).update({ last_seen_at: new Date() });
}

export async function listKnownHosts(knex: Knex, page: { limit: number; offset: number }): Promise<KnownHost[]> {
  return (await knex('ssh_known_hosts').orderBy('address').limit(page.limit).offset(page.offset)).map(toKnownHost);
}

export async function forgetKnownHost(knex: Knex, address: string): Promise<boolean> {
  return (await knex('ssh_known_hosts').where({ address }).delete()) > 0;
}
