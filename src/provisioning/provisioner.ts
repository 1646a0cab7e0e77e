import path from 'node:path';
import type { Knex } from 'knex';
import type { ProvisioningConfig } from '../config';
import { log } from '../log';
import { bootEntryByMac, listBootEntries, syncBootEntries } from './boot-entries-repo';
import { ensureDnsmasqDirs, writeDnsmasqFiles } from './dnsmasq-files';
import { runningInstallOf, recordInstallEvent } from './installs-repo';
import { installLeaseScript, LEASE_LOG, LeaseLogFollower, type LeaseEvent } from './lease-events';

/** Every writer of a provisioning network's files takes this lock: one writer at a time, across workers. */
const PROVISIONER_LOCK = 7_270_002;

/**
 * The one writer of a provisioning network's dnsmasq files (OpenCrowbar's DHCP and DNS database roles),
 * running on the worker beside dnsmasq. It makes the files say what the database says, so any number of
 * calls in any order converge, and it turns dnsmasq's lease events into install events.
 */
export class Provisioner {
  private follower: LeaseLogFollower | undefined;

  constructor(
    private readonly knex: Knex,
    readonly config: ProvisioningConfig,
    private readonly wakeNode: (hostname: string) => Promise<void>,
  ) {}

  async start(): Promise<void> {
    await ensureDnsmasqDirs(this.config.dir);
    await installLeaseScript(this.config.dir);
    await this.reconcile();
    this.follower = new LeaseLogFollower(path.join(this.config.dir, LEASE_LOG), (event) => this.onLease(event));
    this.follower.start();
  }

  async stop(): Promise<void> {
    await this.follower?.stop();
  }

  /** Brings entries in step with the inventory and the files in step with the entries; returns what was written. */
  async reconcile(): Promise<string[]> {
    const written = await this.knex.transaction(async (trx) => {
      await trx.raw('select pg_advisory_xact_lock(?)', [PROVISIONER_LOCK]);
      const retired = await syncBootEntries(trx, this.config.pool);
      const entries = await listBootEntries(trx);
      return writeDnsmasqFiles(this.config.dir, entries, retired);
    });
    if (written.length > 0) log.info(`provisioner: wrote ${written.join(', ')}`);
    return written;
  }

  private async onLease(event: LeaseEvent): Promise<void> {
    if (event.action === 'del') return;
    const entry = await bootEntryByMac(this.knex, event.mac);
    if (!entry) return;
    const install = await runningInstallOf(this.knex, entry.hostname);
    if (!install) return;
    await recordInstallEvent(this.knex, install.id, 'lease', { action: event.action, ip: event.ip, at: event.at });
    await this.wakeNode(entry.hostname).catch((err: unknown) => log.warn(`provisioner: could not wake ${entry.hostname}: ${(err as Error).message}`));
  }
}
