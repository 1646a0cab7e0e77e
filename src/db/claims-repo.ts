import type { Knex } from 'knex';
import { Conflict, FingerprintMismatch } from '../domain/errors';
import { exactTime, keysetPage, type Page, type PageRequest } from './page';

/**
 * A key that announced itself under a hostname. Until the operator accepts one, every key is a claim of
 * its own: a second key never replaces the first (salt-master keeps a changed key apart, in "denied").
 */
export type ClaimStatus = 'pending' | 'accepted' | 'rejected';

export interface ClaimRecord {
  hostname: string;
  fingerprint: string;
  address: string;
  status: ClaimStatus;
  firstSeenAt: Date;
  lastSeenAt: Date;
}

/** A pending claim as the operator sees it: how many keys claim its hostname (more than one: a conflict). */
export interface PendingClaim extends ClaimRecord {
  claims: number;
}

interface ClaimRow {
  hostname: string;
  fingerprint: string;
  public_key: string;
  address: string;
  status: ClaimStatus;
  first_seen_at: Date;
  last_seen_at: Date;
}

function toClaim(row: ClaimRow): ClaimRecord {
  return {
    hostname: row.hostname,
    fingerprint: row.fingerprint,
    address: row.address,
    status: row.status,
    firstSeenAt: row.first_seen_at,
    lastSeenAt: row.last_seen_at,
  };
}

export async function getClaim(knex: Knex, hostname: string, fingerprint: string): Promise<ClaimRecord | undefined> {
  const row = await knex<ClaimRow>('node_claims').where({ hostname, fingerprint }).first();
  return row ? toClaim(row) : undefined;
}

/** Where a page of pending claims ends: hostname, first_seen_at (to the microsecond) and fingerprint. */
export type ClaimKey = [hostname: string, firstSeenAt: string, fingerprint: string];

/**
 * The keys waiting for the operator: pending claims of hostnames still unmanaged, by hostname, oldest
 * claim first, a page at a time. `claims` counts every pending key of the host, on this page or not.
 */
export async function pagePendingClaims(knex: Knex, filter: { hostname?: string }, page: PageRequest<ClaimKey>): Promise<Page<PendingClaim, ClaimKey>> {
  const matching = () => {
    const query = knex('node_claims as c')
      .join('nodes as n', 'n.hostname', 'c.hostname')
      .where({ 'n.state': 'unmanaged', 'c.status': 'pending' })
      .select(
        'c.*',
        exactTime(knex, 'c.first_seen_at', 'first_seen_key'),
        knex.raw("(select count(*) from node_claims o where o.hostname = c.hostname and o.status = 'pending') as claims"),
      );
    if (filter.hostname) query.where('c.hostname', filter.hostname);
    return query;
  };
  type Row = ClaimRow & { first_seen_key: string; claims: string | number };
  const result = await keysetPage<Row, ClaimKey>(knex, matching, page, {
    after: (query, [hostname, firstSeenAt, fingerprint]) =>
      query.whereRaw('(c.hostname, c.first_seen_at, c.fingerprint) > (?, ?::timestamptz, ?)', [hostname, firstSeenAt, fingerprint]),
    order: (query) => query.orderBy([{ column: 'c.hostname' }, { column: 'c.first_seen_at' }, { column: 'c.fingerprint' }]),
    keyOf: (row) => [row.hostname, row.first_seen_key, row.fingerprint],
  });
  return { ...result, rows: result.rows.map((row) => ({ ...toClaim(row), claims: Number(row.claims) })) };
}

export interface ClaimAnnouncement {
  hostname: string;
  fingerprint: string;
  publicKey: string;
  address: string;
}

/**
 * Records an announcement of an unmanaged hostname as its key's claim, new or refreshed (the same key
 * may move to a new address). Runs in the announcement's transaction, with the node row locked, so it
 * cannot interleave with an accept. A key the operator rejected stays rejected.
 */
export async function recordClaim(trx: Knex.Transaction, a: ClaimAnnouncement, now: Date): Promise<{ isNew: boolean }> {
  const existing = await trx<ClaimRow>('node_claims').where({ hostname: a.hostname, fingerprint: a.fingerprint }).first();
  if (existing?.status === 'rejected') {
    throw new Conflict(`the key ${a.fingerprint} was rejected for ${a.hostname}; its announcements are refused`, {
      hostname: a.hostname,
      fingerprint: a.fingerprint,
    });
  }
  if (existing) {
    await trx('node_claims').where({ hostname: a.hostname, fingerprint: a.fingerprint }).update({ address: a.address, last_seen_at: now });
    return { isNew: false };
  }
  await trx('node_claims').insert({
    hostname: a.hostname,
    fingerprint: a.fingerprint,
    public_key: a.publicKey,
    address: a.address,
    status: 'pending',
    first_seen_at: now,
    last_seen_at: now,
  });
  return { isNew: true };
}

/**
 * accept's key check, in the accept transition's transaction with the node row locked. For an
 * unmanaged node the operator's fingerprint picks a pending claim: the node takes that claim's key and
 * address, and every other claim is rejected, each with an event naming its key. Past unmanaged the
 * node has one key, and the fingerprint must be that one.
 */
export async function acceptClaim(
  trx: Knex.Transaction,
  node: { hostname: string; state: string; fingerprint: string | null },
  fingerprint: string,
): Promise<void> {
  const mismatch = () =>
    new FingerprintMismatch(`fingerprint ${fingerprint} does not match the key ${node.hostname} announced`, { field: 'fingerprint' });
  if (node.state !== 'unmanaged') {
    if (node.fingerprint !== fingerprint) throw mismatch();
    return;
  }
  const chosen = await trx<ClaimRow>('node_claims').where({ hostname: node.hostname, fingerprint, status: 'pending' }).first();
  if (!chosen) throw mismatch();
  const now = new Date();
  await trx('nodes').where({ hostname: node.hostname }).update({
    fingerprint: chosen.fingerprint,
    public_key: chosen.public_key,
    address: chosen.address,
    announced_at: chosen.last_seen_at,
    last_seen_at: chosen.last_seen_at,
    updated_at: now,
  });
  await trx('node_claims').where({ hostname: node.hostname, fingerprint }).update({ status: 'accepted' });
  const rejected: Pick<ClaimRow, 'fingerprint' | 'address'>[] = await trx('node_claims')
    .where({ hostname: node.hostname, status: 'pending' })
    .update({ status: 'rejected' })
    .returning(['fingerprint', 'address']);
  for (const claim of rejected) {
    await trx('node_events').insert({
      hostname: node.hostname,
      type: 'claim',
      event: 'reject_claim',
      cause: `key ${claim.fingerprint} (announced from ${claim.address}) rejected: the operator accepted ${fingerprint}`,
    });
  }
}
