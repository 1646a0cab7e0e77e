import type { Knex } from 'knex';
import { INSTALL_KINDS } from '../domain/states';

/** The phases of an install, in order; each is recorded with its time on the install and its task. */
export const INSTALL_PHASES = [
  'boot_env_written',
  'dhcp_confirmed',
  'power_cycled',
  'lease_seen',
  'installer_started',
  'image_written',
  'installed',
  'booting_local',
  'rejoined',
] as const;
export type InstallPhase = (typeof INSTALL_PHASES)[number];
export type InstallStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'aborted';

/** What the machine and the network did, as recorded before it was acknowledged. */
export type InstallEventKind =
  | 'boot_env' // the workflow wrote a boot environment: { attempt, generation, boot_env }
  | 'lease' // dnsmasq's dhcp-script: { action, ip, at }
  | 'install_script' // the installer script of a generation was fetched: { generation, fetch }
  | 'local_script' // the local-boot script was fetched: { generation }
  | 'callback' // the installer: { event, ... }
  | 'rejoined' // the installed OS's agent announced with the key the installer reported: { fingerprint, address }
  | 'foreign_announce'; // an agent announced the hostname with any other key: { fingerprint, address }

export interface InstallEvent {
  id: number;
  kind: InstallEventKind;
  detail: Record<string, unknown>;
  at: number;
}

export interface InstallRecord {
  id: number;
  operationId: number;
  taskId: string;
  hostname: string;
  image: string;
  generation: number | null;
  status: InstallStatus;
  phase: string | null;
  phases: { phase: string; at: string }[];
  error: string | null;
  agentFingerprint: string | null;
  powerCycles: number;
  createdAt: Date;
  finishedAt: Date | null;
}

function toInstall(row: any): InstallRecord {
  return {
    id: Number(row.id),
    operationId: Number(row.operation_id),
    taskId: row.task_id,
    hostname: row.hostname,
    image: row.image,
    generation: row.generation,
    status: row.status,
    phase: row.phase,
    phases: row.phases ?? [],
    error: row.error,
    agentFingerprint: row.agent_fingerprint,
    powerCycles: row.power_cycles,
    createdAt: row.created_at,
    finishedAt: row.finished_at,
  };
}

/** One install per queued deploy operation, written in the request's transaction. */
export async function createInstalls(trx: Knex.Transaction, rows: { operationId: number; taskId: string; hostname: string; image: string }[]): Promise<void> {
  if (rows.length === 0) return;
  await trx('installs').insert(rows.map((r) => ({ operation_id: r.operationId, task_id: r.taskId, hostname: r.hostname, image: r.image, status: 'queued' })));
}

export async function installOfOperation(knex: Knex, operationId: number): Promise<InstallRecord | undefined> {
  const row = await knex('installs').where({ operation_id: operationId }).first();
  return row ? toInstall(row) : undefined;
}

/** The node's latest install, with its place in the install queue while it waits for a slot. */
export async function latestInstallOf(knex: Knex, hostname: string): Promise<(InstallRecord & { queuePosition: number | null }) | undefined> {
  const row = await knex('installs').where({ hostname }).orderBy('id', 'desc').first();
  if (!row) return undefined;
  const install = toInstall(row);
  let queuePosition: number | null = null;
  if (install.status === 'queued') {
    const op = await knex('operations').select('id', 'wants_slot_since', 'holds_slot').where({ id: install.operationId }).first();
    if (op && !op.holds_slot) {
      // Ahead of it: every install already waiting for a slot before it, and, if it has not asked yet, every one asking.
      const ahead = await knex('operations')
        .whereIn('kind', INSTALL_KINDS)
        .where({ holds_slot: false })
        .whereNotNull('wants_slot_since')
        .modify((q) => {
          if (op.wants_slot_since !== null) q.where('wants_slot_since', '<', op.wants_slot_since);
        })
        .count({ n: '*' })
        .first();
      queuePosition = Number(ahead?.n ?? 0) + 1;
    }
  }
  return { ...install, queuePosition };
}

/** The running install of a node, if any: where a machine's callbacks and lease events belong. */
export async function runningInstallOf(knex: Knex, hostname: string): Promise<InstallRecord | undefined> {
  const row = await knex('installs').where({ hostname, status: 'running' }).orderBy('id', 'desc').first();
  return row ? toInstall(row) : undefined;
}

export async function installByTokenHash(knex: Knex, hash: string): Promise<InstallRecord | undefined> {
  const row = await knex('installs').where({ token_hash: hash }).first();
  return row ? toInstall(row) : undefined;
}

export async function startInstall(knex: Knex, installId: number): Promise<void> {
  await knex('installs').where({ id: installId }).whereIn('status', ['queued']).update({ status: 'running' });
}

/** Appends a phase with its time; a repeated activity does not record the phase it is in twice. */
export async function recordPhase(knex: Knex, installId: number, phase: string): Promise<void> {
  await knex.raw(
    `update installs set phase = ?, phases = phases || jsonb_build_array(jsonb_build_object('phase', ?::text, 'at', to_char(now() at time zone 'utc', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')))
     where id = ? and phase is distinct from ?`,
    [phase, phase, installId, phase],
  );
}

export async function recordInstallEvent(knex: Knex | Knex.Transaction, installId: number, kind: InstallEventKind, detail: Record<string, unknown>): Promise<number> {
  const [row] = await knex('install_events').insert({ install_id: installId, kind, detail: JSON.stringify(detail) }).returning('id');
  return Number((row as { id: string | number }).id);
}

export async function installEventsSince(knex: Knex, installId: number, afterId: number): Promise<InstallEvent[]> {
  const rows = await knex('install_events').where({ install_id: installId }).where('id', '>', afterId).orderBy('id').limit(500);
  return rows.map((r) => ({ id: Number(r.id), kind: r.kind, detail: r.detail, at: new Date(r.at).getTime() }));
}

export async function finishInstall(knex: Knex, installId: number, outcome: { status: 'succeeded' | 'failed' | 'aborted'; error: string | null }): Promise<void> {
  await knex('installs').where({ id: installId }).update({ status: outcome.status, error: outcome.error, finished_at: new Date(), token_hash: null });
}
