import type { Knex } from 'knex';
import { Conflict, InvalidState, NotFound } from '../domain/errors';
import { allowedVerbs, EDITABLE_STATES, refusal } from '../domain/states';
import type { DriverNode, PowerState } from '../drivers/types';
import type { SecretBox } from '../secrets/secret-box';
import { getNode, type NodeRecord } from './nodes-repo';
import { enterNode, removeNode } from './transitions-repo';

export interface Enrollment {
  name: string;
  driver: string;
  driverInfo: Record<string, unknown>;
  secrets: Record<string, string>;
  instanceInfo: Record<string, unknown>;
  ports: string[];
  /** The agent key expected from the node (agent driver), compared when its agent announces. */
  agentFingerprint?: string;
}

/** Creates a node in enroll, its secrets sealed; a name or a MAC already in use is a conflict naming it. */
export async function enrollNode(knex: Knex, box: SecretBox, e: Enrollment): Promise<NodeRecord> {
  await knex.transaction(async (trx) => {
    const taken = await trx('node_ports').select('address', 'hostname').whereIn('address', e.ports);
    if (taken.length > 0) {
      throw new Conflict(`MAC address in use: ${taken.map((t) => `${t.address} (by ${t.hostname})`).join(', ')}`, {
        field: 'ports',
        addresses: taken.map((t) => t.address),
      });
    }
    const created = await enterNode(trx, {
      hostname: e.name,
      state: 'enroll',
      event: 'enroll',
      cause: `enrolled with the ${e.driver} driver`,
      columns: {
        driver: e.driver,
        driver_info: JSON.stringify(e.driverInfo),
        driver_secrets: JSON.stringify(box.sealAll(e.name, e.secrets)),
        instance_info: JSON.stringify(e.instanceInfo),
        fingerprint: e.agentFingerprint ?? null,
      },
    });
    if (!created) throw new Conflict(`a node named ${e.name} exists already`, { field: 'name' });
    if (e.ports.length > 0) await trx('node_ports').insert(e.ports.map((address) => ({ address, hostname: e.name })));
  });
  return (await getNode(knex, e.name))!;
}

/** The node's row, locked, when its driver_info and instance_info may still change. */
async function lockEditable(trx: Knex.Transaction, name: string) {
  const row = await trx('nodes').where({ hostname: name }).forUpdate().first();
  if (!row) throw new NotFound(`no node ${name}`, { hostname: name });
  if (!EDITABLE_STATES.includes(row.state)) {
    throw new InvalidState(`${refusal(name, row.state, 'changing driver_info or instance_info')} (only in ${EDITABLE_STATES.join(', ')})`, {
      state: row.state,
      allowed: allowedVerbs(row.state),
    });
  }
  return row;
}

/** Merges changes into driver_info (secrets apart, sealed) and instance_info; a null value removes a key. */
export async function updateNodeInfo(
  knex: Knex,
  box: SecretBox,
  name: string,
  change: { driverInfo?: Record<string, unknown>; secrets?: Record<string, string | null>; instanceInfo?: Record<string, unknown>; ports?: string[] },
): Promise<NodeRecord> {
  const secrets = Object.fromEntries(
    Object.entries(change.secrets ?? {}).map(([field, value]) => [field, value === null ? null : box.seal(value, { node: name, field })]),
  );
  await knex.transaction(async (trx) => {
    const row = await lockEditable(trx, name);
    const merge = (current: Record<string, unknown> | null, patch: Record<string, unknown> | undefined) => {
      const next: Record<string, unknown> = { ...(current ?? {}) };
      for (const [k, v] of Object.entries(patch ?? {})) {
        if (v === null) delete next[k];
        else next[k] = v;
      }
      return JSON.stringify(next);
    };
    await trx('nodes')
      .where({ hostname: name })
      .update({
        driver_info: merge(row.driver_info, change.driverInfo),
        driver_secrets: merge(row.driver_secrets, secrets),
        instance_info: merge(row.instance_info, change.instanceInfo),
        updated_at: new Date(),
      });
    if (change.ports) {
      // The ports are replaced as a whole; the provisioner then moves the node's DHCP entry to its new MAC.
      const taken = await trx('node_ports').select('address', 'hostname').whereIn('address', change.ports).whereNot({ hostname: name });
      if (taken.length > 0) {
        throw new Conflict(`MAC address in use: ${taken.map((t) => `${t.address} (by ${t.hostname})`).join(', ')}`, { field: 'ports', addresses: taken.map((t) => t.address) });
      }
      await trx('node_ports').where({ hostname: name }).delete();
      if (change.ports.length > 0) await trx('node_ports').insert(change.ports.map((address) => ({ address, hostname: name })));
    }
  });
  return (await getNode(knex, name))!;
}

/** Removes a node without any cleaning, in the states where that is allowed. */
export async function deleteEnrolledNode(knex: Knex, name: string): Promise<void> {
  await knex.transaction((trx) => removeNode(trx, name, 'deleted without cleaning'));
}

export async function portsOf(knex: Knex, name: string): Promise<string[]> {
  return (await knex('node_ports').select('address').where({ hostname: name }).orderBy('address')).map((r) => r.address);
}

/**
 * Everything a driver needs, secrets included: read here, by reference, never carried in a payload.
 * Secrets that do not open with this process's key throw SecretsKeyMismatch, naming the node.
 */
export async function driverNode(knex: Knex, box: SecretBox, name: string): Promise<{ driver: string; node: DriverNode; record: NodeRecord }> {
  const row = await knex('nodes').where({ hostname: name }).first();
  if (!row) throw new NotFound(`no node ${name}`);
  if (!row.driver) throw new Conflict(`node ${name} has no power driver`);
  const record = (await getNode(knex, name))!;
  return {
    driver: row.driver,
    record,
    node: {
      hostname: name,
      driverInfo: row.driver_info ?? {},
      secrets: box.openAll(name, row.driver_secrets ?? {}),
      agent: row.address && row.fingerprint ? { hostname: name, address: row.address, fingerprint: row.fingerprint } : null,
    },
  };
}

export async function recordPowerState(knex: Knex, name: string, state: PowerState, options: { enforce?: boolean } = {}): Promise<void> {
  const change: Record<string, unknown> = { power_state: state, updated_at: new Date() };
  if (options.enforce) change.enforced_power_state = state;
  await knex('nodes').where({ hostname: name }).update(change);
}

export async function recordBootConfig(knex: Knex, name: string, config: Record<string, unknown>): Promise<void> {
  await knex('nodes').where({ hostname: name }).update({ boot_config: JSON.stringify(config), updated_at: new Date() });
}
