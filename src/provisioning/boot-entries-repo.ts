import type { Knex } from 'knex';

/**
 * What a MAC is served on the provisioning network (OpenCrowbar's DHCP and DNS database roles): its
 * fixed address and DNS name, and the boot environment, versioned by generation. The database is the
 * truth; dnsmasq's files and the iPXE scripts are derived from it.
 */
export interface BootEntry {
  hostname: string;
  mac: string;
  address: string;
  /** 'local' or 'install:<image>'. */
  bootEnv: string;
  generation: number;
  enabled: boolean;
}

interface BootEntryRow {
  hostname: string;
  mac: string;
  address: string;
  boot_env: string;
  generation: number;
  enabled: boolean;
}

function toEntry(row: BootEntryRow): BootEntry {
  return { hostname: row.hostname, mac: row.mac, address: row.address, bootEnv: row.boot_env, generation: row.generation, enabled: row.enabled };
}

export function installEnv(image: string): string {
  return `install:${image}`;
}
export function imageOfEnv(bootEnv: string): string | null {
  return bootEnv.startsWith('install:') ? bootEnv.slice('install:'.length) : null;
}

function ipToNumber(ip: string): number {
  return ip.split('.').reduce((n, part) => n * 256 + Number(part), 0);
}
function numberToIp(n: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join('.');
}

export class PoolExhausted extends Error {}

/**
 * Keeps entries in step with the inventory (on_node_change): an enrolled node with a MAC gets an entry
 * with the next free address of the pool; a node whose MAC changed gets the new one (a new generation);
 * a node left without ports loses its entry. Entries of deleted nodes go with them (cascade). Returns
 * the MACs no longer served, to be disabled.
 */
export async function syncBootEntries(trx: Knex.Transaction, pool: { first: string; last: string }): Promise<string[]> {
  // The node's boot MAC is its lowest port address: stable whatever order the ports were given in.
  const wanted: { hostname: string; mac: string }[] = await trx('node_ports').select('hostname').min({ mac: 'address' }).groupBy('hostname');
  const existing = new Map((await trx<BootEntryRow>('boot_entries').select('*')).map((row) => [row.hostname, row]));
  const retired: string[] = [];
  const retiredAddresses = (await trx('retired_boot_addresses').select('address')).map((r) => ipToNumber(r.address));
  const taken = new Set([...[...existing.values()].map((row) => ipToNumber(row.address)), ...retiredAddresses]);
  let next = ipToNumber(pool.first);
  const last = ipToNumber(pool.last);
  const allocate = (hostname: string): string => {
    while (next <= last && taken.has(next)) next += 1;
    if (next > last) throw new PoolExhausted(`PROVISIONING_POOL ${pool.first}-${pool.last} has no free address left for ${hostname}`);
    taken.add(next);
    return numberToIp(next);
  };
  for (const { hostname, mac } of wanted) {
    const entry = existing.get(hostname);
    if (entry?.mac === mac) continue;
    if (entry) {
      // dnsmasq keeps serving the old MAC's line until it restarts: the node moves to a new address, and
      // the old one is never handed out again by this service (the table's trigger retires it).
      retired.push(entry.mac);
      await trx('boot_entries')
        .where({ hostname })
        .update({ mac, address: allocate(hostname), generation: entry.generation + 1, updated_at: new Date() });
      continue;
    }
    await trx('boot_entries').insert({ hostname, mac, address: allocate(hostname) });
  }
  // A node left without any port is served no more: its entry goes, its MAC and address are retired.
  const stillWanted = new Set(wanted.map((w) => w.hostname));
  for (const entry of existing.values()) {
    if (stillWanted.has(entry.hostname)) continue;
    retired.push(entry.mac);
    await trx('boot_entries').where({ hostname: entry.hostname }).delete();
  }
  return retired;
}

export async function listBootEntries(knex: Knex): Promise<BootEntry[]> {
  return (await knex<BootEntryRow>('boot_entries').select('*').orderBy('hostname')).map(toEntry);
}

export async function getBootEntry(knex: Knex, hostname: string): Promise<BootEntry | undefined> {
  const row = await knex<BootEntryRow>('boot_entries').where({ hostname }).first();
  return row ? toEntry(row) : undefined;
}

export async function bootEntryByMac(knex: Knex, mac: string): Promise<BootEntry | undefined> {
  const row = await knex<BootEntryRow>('boot_entries').where({ mac: mac.toLowerCase() }).first();
  return row ? toEntry(row) : undefined;
}

/** A new boot environment is a new generation: what was served before is stale from now on. */
export async function setBootEnv(trx: Knex.Transaction, hostname: string, change: { bootEnv: string; enabled: boolean }): Promise<BootEntry> {
  const [row] = await trx('boot_entries')
    .where({ hostname })
    .update({ boot_env: change.bootEnv, enabled: change.enabled, generation: trx.raw('generation + 1'), updated_at: new Date() })
    .returning('*');
  if (!row) throw new Error(`${hostname} has no boot entry`);
  return toEntry(row as BootEntryRow);
}
