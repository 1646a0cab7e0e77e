import type { Knex } from 'knex';
import { findImage } from '../images/images-repo';
import { log } from '../log';
import { bootEntryByMac, getBootEntry, imageOfEnv, setBootEnv } from './boot-entries-repo';
import { installScript, localScript } from './ipxe-script';
import { installToken, tokenHash } from './install-token';
import { installByTokenHash, recordInstallEvent, runningInstallOf } from './installs-repo';

export interface BootServiceDeps {
  knex: Knex;
  /** Where machines reach the service (PROVISIONING_URL). */
  baseUrl: string;
  installTokenKey: Buffer;
  serverFingerprint: string;
  /** Wakes the node's workflow; what woke it is recorded already, so a lost wake-up only delays. */
  wake(hostname: string): Promise<void>;
}

export type InstallerCallback =
  | { event: 'installing' }
  | { event: 'progress'; percent: number }
  | { event: 'image_written'; sha256: string }
  | { event: 'installed'; sha256: string; agent_fingerprint: string }
  | { event: 'failed'; reason: string };

export interface CallbackAnswer {
  applied: boolean;
  reason?: string;
}

/**
 * The machine side of an install: the per-MAC iPXE script, and the installer's callbacks. Everything a
 * machine does is recorded before it is answered, then the node's workflow is woken to look.
 */
export class BootService {
  constructor(private readonly deps: BootServiceDeps) {}

  private wake(hostname: string): void {
    this.deps.wake(hostname).catch((err: unknown) => log.warn(`boot: could not wake ${hostname}: ${(err as Error).message}`));
  }

  /**
   * The script for a MAC, or null for a MAC we do not serve. An install's script is handed out once per
   * generation: a second fetch before `installed` is a PXE loop, recorded (the install fails with that
   * name) and answered with local boot so the installer never runs twice. `confirm` is the provisioner's
   * own check of what would be served: it records nothing.
   */
  async script(mac: string, confirm: boolean): Promise<string | null> {
    const { knex } = this.deps;
    const entry = await bootEntryByMac(knex, mac);
    if (!entry || !entry.enabled) return null;
    const image = imageOfEnv(entry.bootEnv);
    const install = await runningInstallOf(knex, entry.hostname);
    if (image && install && install.generation === entry.generation) {
      const registered = await findImage(knex, image);
      const render = () =>
        installScript({
          hostname: entry.hostname,
          generation: entry.generation,
          image: { name: image, sha256: registered?.sha256 ?? '', size: registered?.size ?? null },
          baseUrl: this.deps.baseUrl,
          token: installToken(this.deps.installTokenKey, install.taskId, entry.generation),
          serverFingerprint: this.deps.serverFingerprint,
        });
      if (confirm) return render();
      const fetch = await knex.transaction(async (trx) => {
        await trx('installs').where({ id: install.id }).forUpdate().first();
        const before = await trx('install_events')
          .where({ install_id: install.id, kind: 'install_script' })
          .whereRaw("(detail->>'generation')::int = ?", [entry.generation])
          .count({ n: '*' })
          .first();
        const n = Number(before?.n ?? 0) + 1;
        await recordInstallEvent(trx, install.id, 'install_script', { generation: entry.generation, fetch: n });
        return n;
      });
      this.wake(entry.hostname);
      if (fetch > 1) {
        log.warn(`boot: ${entry.hostname} fetched the installer of generation ${entry.generation} again: PXE loop; serving local boot`);
        return localScript(entry.hostname, entry.generation);
      }
      return render();
    }
    if (install && !confirm) {
      await recordInstallEvent(knex, install.id, 'local_script', { generation: entry.generation });
      this.wake(entry.hostname);
    }
    return localScript(entry.hostname, entry.generation);
  }

  /**
   * An installer's callback. The token names the install and its generation; a stale or unknown one is
   * acknowledged and changes nothing. `installed` hands the node to local boot (a new generation) and
   * records the agent key the installer made, in one transaction, before it is answered: the installer
   * reboots only after this answer, so it can never boot the installer again.
   */
  async callback(token: string, body: InstallerCallback): Promise<CallbackAnswer> {
    const { knex } = this.deps;
    const install = await installByTokenHash(knex, tokenHash(token));
    const stale: CallbackAnswer = { applied: false, reason: 'unknown or stale token: this install or generation is over; nothing was changed' };
    // Found by its hash, the token is this install's current one; the transaction checks it is still.
    if (!install || install.status !== 'running' || install.generation === null) return stale;
    const applied = await knex.transaction(async (trx) => {
      const current = await trx('installs').where({ id: install.id }).forUpdate().first();
      const entry = await getBootEntry(trx, install.hostname);
      if (current?.status !== 'running' || current.token_hash !== tokenHash(token) || entry?.generation !== install.generation) return false;
      await recordInstallEvent(trx, install.id, 'callback', body as unknown as Record<string, unknown>);
      if (body.event === 'installed') {
        await setBootEnv(trx, install.hostname, { bootEnv: 'local', enabled: true });
        await trx('installs').where({ id: install.id }).update({ agent_fingerprint: body.agent_fingerprint, token_hash: null });
        // The installed OS's agent is known by this key alone: its announcement fills in the rest.
        await trx('nodes').where({ hostname: install.hostname }).update({ fingerprint: body.agent_fingerprint, public_key: null, address: null, updated_at: new Date() });
      }
      return true;
    });
    if (!applied) return stale;
    this.wake(install.hostname);
    return { applied: true };
  }

  /**
   * An agent announced a host that is being installed. With the key the installer reported it has
   * rejoined; with any other key it stays out, and the attempt is recorded on the install and the node.
   */
  async announced(hostname: string, fingerprint: string, address: string, rejoined: boolean): Promise<void> {
    const { knex } = this.deps;
    const install = await runningInstallOf(knex, hostname);
    // Before `installed` the old OS's agent (a rebuild) may still announce with the old key: not a rejoin.
    if (!install || (rejoined && install.agentFingerprint !== fingerprint)) return;
    await recordInstallEvent(knex, install.id, rejoined ? 'rejoined' : 'foreign_announce', { fingerprint, address });
    if (!rejoined) {
      await knex('node_events').insert({
        hostname,
        type: 'claim',
        event: 'foreign_announce',
        cause: `key ${fingerprint} announced ${hostname} from ${address} during its install; the installer reported ${install.agentFingerprint ?? 'no key yet'}: refused`,
      });
    }
    this.wake(hostname);
  }
}
