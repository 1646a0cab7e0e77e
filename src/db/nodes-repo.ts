import type { Knex } from 'knex';
import { Conflict } from '../domain/errors';
import type { NodeState } from '../domain/states';
import { log } from '../log';
import { recordClaim } from './claims-repo';
import { keysetPage, type Page, type PageRequest } from './page';
import { enterNode } from './transitions-repo';

export interface NodeRecord {
  hostname: string;
  state: NodeState;
  /** The deployment the node belongs to (`system` until it is moved or bound elsewhere). */
  deployment: string;
  /** The agent's identity; null for a node enrolled by its BMC that runs no agent. */
  fingerprint: string | null;
  publicKey: string | null;
  address: string | null;
  facts: Record<string, unknown> | null;
  lastError: string | null;
  announcedAt: Date | null;
  acceptedAt: Date | null;
  factsAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
  reachable: boolean | null;
  lastSeenAt: Date | null;
  monitoringSilenced: boolean;
  driver: string | null;
  /** Without its secret fields: those stay in driver_secrets and are read only by drivers. */
  driverInfo: Record<string, unknown> | null;
  secretFields: string[];
  instanceInfo: Record<string, unknown> | null;
  bootConfig: Record<string, unknown> | null;
  powerState: string | null;
  enforcedPowerState: string | null;
  powerFault: boolean;
  powerSyncFailures: number;
}

interface NodeRow {
  hostname: string;
  state: NodeState;
  deployment: string;
  fingerprint: string | null;
  public_key: string | null;
  address: string | null;
  facts: Record<string, unknown> | null;
  last_error: string | null;
  announced_at: Date | null;
  accepted_at: Date | null;
  facts_at: Date | null;
  created_at: Date;
  updated_at: Date;
  reachable: boolean | null;
  last_seen_at: Date | null;
  monitoring_silenced: boolean;
  driver: string | null;
  driver_info: Record<string, unknown> | null;
  driver_secrets: Record<string, string> | null;
  instance_info: Record<string, unknown> | null;
  boot_config: Record<string, unknown> | null;
  power_state: string | null;
  enforced_power_state: string | null;
  power_fault: boolean;
  power_sync_failures: number;
}

function toNode(row: NodeRow): NodeRecord {
  return {
    hostname: row.hostname,
    state: row.state,
    deployment: row.deployment,
    fingerprint: row.fingerprint,
    publicKey: row.public_key,
    address: row.address,
    facts: row.facts,
    lastError: row.last_error,
    announcedAt: row.announced_at,
    acceptedAt: row.accepted_at,
    factsAt: row.facts_at,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    reachable: row.reachable,
    lastSeenAt: row.last_seen_at,
    monitoringSilenced: row.monitoring_silenced,
    driver: row.driver,
    driverInfo: row.driver_info,
    secretFields: Object.keys(row.driver_secrets ?? {}),
    instanceInfo: row.instance_info,
    bootConfig: row.boot_config,
    powerState: row.power_state,
    enforcedPowerState: row.enforced_power_state,
    powerFault: row.power_fault,
    powerSyncFailures: row.power_sync_failures,
  };
}

export async function getNode(knex: Knex, hostname: string): Promise<NodeRecord | undefined> {
  const row = await knex<NodeRow>('nodes').where({ hostname }).first();
  return row ? toNode(row) : undefined;
}

export interface NodeFilter {
  states?: NodeState[];
  excludeStates?: NodeState[];
  hostnames?: string[];
}

function nodesMatching(knex: Knex, filter: NodeFilter): Knex.QueryBuilder<NodeRow> {
  const query = knex<NodeRow>('nodes');
  if (filter.hostnames) query.whereRaw('hostname = any(?)', [filter.hostnames]);
  if (filter.states) query.whereIn('state', filter.states);
  if (filter.excludeStates) query.whereNotIn('state', filter.excludeStates);
  return query;
}

/** Every matching node, by hostname: for callers that name their nodes (a bounded list). */
export async function listNodes(knex: Knex, filter: NodeFilter = {}): Promise<NodeRecord[]> {
  return (await nodesMatching(knex, filter).orderBy('hostname')).map(toNode);
}

/** A page of nodes by hostname (unique, so it is the cursor), backed by nodes (state, hostname) or the primary key. */
export async function pageNodes(knex: Knex, filter: NodeFilter, page: PageRequest<string>): Promise<Page<NodeRecord, string>> {
  const result = await keysetPage<NodeRow, string>(knex, () => nodesMatching(knex, filter), page, {
    after: (query, hostname) => query.where('hostname', '>', hostname),
    order: (query) => query.orderBy('hostname'),
    keyOf: (row) => row.hostname,
  });
  return { ...result, rows: result.rows.map(toNode) };
}

export interface Announcement {
  hostname: string;
  fingerprint: string;
  publicKey: string;
  address: string;
}

/**
 * Records an agent's announcement. A new host becomes an unmanaged node. Until the operator accepts a
 * key, each key that announces the hostname is a claim of its own (claims-repo): another key is listed
 * beside the first, never in its place, so the node's key and address change only through accept.
 * After acceptance only the accepted key is honoured, as salt-master refuses a minion whose key changed.
 */
export async function recordAnnouncement(knex: Knex, a: Announcement): Promise<{ node: NodeRecord; isNew: boolean }> {
  // Most announcements are heartbeats from a managed node with its key and known address: one statement.
  const [known] = await knex<NodeRow>('nodes')
    .where({ hostname: a.hostname, fingerprint: a.fingerprint, address: a.address })
    .whereNot({ state: 'unmanaged' })
    .update({ announced_at: new Date(), last_seen_at: new Date() })
    .returning('*');
  if (known) return { node: toNode(known), isNew: false };
  // The next most common: a node waiting for accept, heartbeating with the key it holds, from the same
  // address. Two statements, each locking one row, in accept's order (node, then claim), holding no lock
  // between them: once an accept has taken the node (or anything else differs) the first finds nothing
  // and the transaction below decides.
  const [waiting] = await knex<NodeRow>('nodes')
    .where({ hostname: a.hostname, fingerprint: a.fingerprint, address: a.address, state: 'unmanaged' })
    .whereExists((q) => q.from('node_claims').where({ hostname: a.hostname, fingerprint: a.fingerprint, address: a.address, status: 'pending' }))
    .update({ announced_at: new Date(), last_seen_at: new Date() })
    .returning('*');
  if (waiting) {
    await knex('node_claims').where({ hostname: a.hostname, fingerprint: a.fingerprint, status: 'pending' }).update({ last_seen_at: new Date() });
    return { node: toNode(waiting), isNew: false };
  }
  return knex.transaction(async (trx) => {
    const now = new Date();
    // Locked: an accept (which locks the same row) sees this announcement entirely or not at all.
    let existing = await trx<NodeRow>('nodes').where({ hostname: a.hostname }).forUpdate().first();
    if (!existing) {
      const created = (await enterNode(trx, {
        hostname: a.hostname,
        state: 'unmanaged',
        event: 'announce',
        cause: `agent announced from ${a.address}`,
        columns: { fingerprint: a.fingerprint, public_key: a.publicKey, address: a.address, announced_at: now, last_seen_at: now },
      })) as NodeRow | undefined;
      if (created) {
        await recordClaim(trx, a, now);
        return { node: toNode(created), isNew: true };
      }
      // Another first announcement of this hostname committed in between: go on as for a known host.
      existing = await trx<NodeRow>('nodes').where({ hostname: a.hostname }).forUpdate().first();
      if (!existing) throw new Conflict(`${a.hostname} changed while it was announced; announce again`, { hostname: a.hostname });
    }
    if (existing.state !== 'unmanaged') {
      if (existing.fingerprint !== a.fingerprint) {
        throw new Conflict(`${a.hostname} is managed with key ${existing.fingerprint}; an announcement with key ${a.fingerprint} is refused`, {
          hostname: a.hostname,
          accepted_fingerprint: existing.fingerprint,
        });
      }
      // The accepted key from a new address (the fast path above missed it), or the first announcement of
      // a node enrolled by its agent's fingerprint: the key that matches it is now known in full.
      const [moved] = await trx<NodeRow>('nodes')
        .where({ hostname: a.hostname })
        .update({ public_key: a.publicKey, address: a.address, announced_at: now, last_seen_at: now, updated_at: now })
        .returning('*');
      return { node: toNode(moved!), isNew: false };
    }
    const { isNew } = await recordClaim(trx, a, now);
    // The hostname was heard from; the node's key and address follow only the key the node row holds.
    const own = existing.fingerprint === a.fingerprint;
    const [row] = await trx<NodeRow>('nodes')
      .where({ hostname: a.hostname })
      .update(own ? { address: a.address, announced_at: now, last_seen_at: now, updated_at: now } : { last_seen_at: now })
      .returning('*');
    if (isNew && !own) {
      const cause = `another key ${a.fingerprint} claims ${a.hostname} from ${a.address}; accept picks one by fingerprint`;
      await trx('node_events').insert({ hostname: a.hostname, type: 'claim', event: 'claim', cause });
      log.warn(`node ${a.hostname}: ${cause}`);
    }
    return { node: toNode(row!), isNew };
  });
}

export async function saveFacts(knex: Knex, hostname: string, facts: Record<string, unknown>): Promise<void> {
  await knex('nodes').where({ hostname }).update({ facts: JSON.stringify(facts), facts_at: new Date(), updated_at: new Date() });
}

export async function setLastError(knex: Knex, hostname: string, lastError: string | null): Promise<void> {
  await knex('nodes').where({ hostname }).update({ last_error: lastError, updated_at: new Date() });
}
