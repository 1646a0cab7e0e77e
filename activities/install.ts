import fs from 'node:fs/promises';
import { ApplicationFailure } from '@temporalio/common';
import { Context } from '@temporalio/activity';
import type { Knex } from 'knex';
import { driverNode, recordBootConfig, recordPowerState } from '../src/db/enrollment-repo';
import { DomainError } from '../src/domain/errors';
import { getDriver } from '../src/drivers';
import { DriverError } from '../src/drivers/types';
import { findImage, getImage, verifyImage, type ImageRecord } from '../src/images/image-service';
import type { SecretBox } from '../src/secrets/secret-box';
import type { AgentClient } from '../src/agent-client';
import { getBootEntry, installEnv, setBootEnv } from '../src/provisioning/boot-entries-repo';
import { probeDhcp } from '../src/provisioning/dhcp-probe';
import { bootUrlOf, bootUrlTemplate, parseScriptHeader } from '../src/provisioning/ipxe-script';
import { installToken, tokenHash } from '../src/provisioning/install-token';
import * as installs from '../src/provisioning/installs-repo';
import type { Provisioner } from '../src/provisioning/provisioner';
import { keepAlive } from './heartbeat';

export interface InstallDeps {
  knex: Knex;
  agents: AgentClient;
  secretBox: SecretBox;
  /** Derives the installers' one-time tokens (the API derives the same ones to serve the scripts). */
  installTokenKey: Buffer;
  /** Absent when no provisioning network is configured on this worker. */
  provisioner?: Provisioner;
}

/** What the workflow needs of an install: it never carries tokens or secrets. */
export interface InstallRef {
  id: number;
  taskId: string;
  hostname: string;
  image: string;
  imageSha256: string;
  status: installs.InstallStatus;
}

/** What the boot environment is to be: the installer of an image, local disk, or not served at all. */
export type BootTarget = { kind: 'install'; image: string; attempt: number } | { kind: 'local' } | { kind: 'disabled' };

/** Refusals a retry cannot mend: the install fails naming them. */
function refuse(err: unknown, type = 'InstallRefused'): never {
  if (err instanceof DomainError || err instanceof DriverError) throw ApplicationFailure.nonRetryable((err as Error).message, type);
  throw err;
}

const CONFIRM_WITHIN_MS = 60_000;
/** A URL part is trusted this long after it was last hashed in full. */
const URL_VERIFIED_FOR_MS = 10 * 60_000;

/**
 * What an image's verification depended on: the registered checksum and each part's file identity
 * (size, mtime, inode), or, for a URL, the current ten-minute period. A bulk deploy of one image to
 * many nodes hashes its disk once per worker, not once per node, yet a changed file is hashed again.
 */
async function verificationKey(image: ImageRecord): Promise<string> {
  const parts = await Promise.all(
    [image.kernel, image.initrd, image.disk].map(async (part) =>
      /^https?:\/\//.test(part)
        ? `${part}@${Math.floor(Date.now() / URL_VERIFIED_FOR_MS)}`
        : await fs.stat(part).then((s) => `${part}:${s.size}:${s.mtimeMs}:${s.ino}`, () => `${part}:missing`),
    ),
  );
  return `${image.sha256}|${parts.join('|')}`;
}

export function createInstallActivities(deps: InstallDeps) {
  const { knex } = deps;
  const ctx = { agents: deps.agents };
  const verified = new Map<string, string>();

  async function checkImage(name: string): Promise<void> {
    const image = await getImage(knex, name).catch((err: unknown) => refuse(err));
    const key = await verificationKey(image);
    if (verified.get(name) === key) return;
    await verifyImage(knex, name).catch((err: unknown) => refuse(err));
    verified.set(name, key);
  }

  function provisioner(): Provisioner {
    if (!deps.provisioner) {
      throw ApplicationFailure.nonRetryable('this worker has no provisioning network (set PROVISIONING_URL and the PROVISIONING_* settings)', 'InstallRefused');
    }
    return deps.provisioner;
  }

  async function bmc(hostname: string) {
    const { driver: name, node } = await driverNode(knex, deps.secretBox, hostname).catch((err: unknown) => refuse(err));
    const driver = getDriver(name);
    if (!driver || name !== 'ipmi') throw ApplicationFailure.nonRetryable(`${hostname} has no BMC driver (driver ${name}); an install power-cycles through the BMC`, 'InstallRefused');
    return { driver, node };
  }

  /** Proves what a MAC would boot now: the DHCP offer, and the generation of the script it points at. */
  async function observe(hostname: string): Promise<{ offered: string | null; bootFile: string | null; scriptGeneration: number | null; scriptEnv: string | null; problem: string | null }> {
    const config = provisioner().config;
    const entry = await getBootEntry(knex, hostname);
    if (!entry) return { offered: null, bootFile: null, scriptGeneration: null, scriptEnv: null, problem: `${hostname} has no boot entry (no MAC?)` };
    const offer = await probeDhcp({ server: config.dhcpServer, relayAddress: config.relayAddress, mac: entry.mac, timeoutMs: 3_000, ipxe: true });
    let scriptGeneration: number | null = null;
    let scriptEnv: string | null = null;
    let problem: string | null = null;
    try {
      const res = await fetch(`${bootUrlOf(config.url, entry.mac)}?confirm=1`, { signal: AbortSignal.timeout(5_000) });
      const header = res.ok ? parseScriptHeader(await res.text()) : null;
      scriptGeneration = header?.generation ?? null;
      scriptEnv = header?.bootEnv ?? null;
      if (!res.ok) problem = `the boot script answered ${res.status}`;
    } catch (err) {
      problem = `the boot script could not be fetched: ${(err as Error).message}`;
    }
    return { offered: offer?.address ?? null, bootFile: offer?.bootFile ?? null, scriptGeneration, scriptEnv, problem };
  }

  return {
    async installOfOperation(input: { operationId: number }): Promise<InstallRef | null> {
      const install = await installs.installOfOperation(knex, input.operationId);
      if (!install) return null;
      const image = await findImage(knex, install.image);
      return { id: install.id, taskId: install.taskId, hostname: install.hostname, image: install.image, imageSha256: image?.sha256 ?? '', status: install.status };
    },

    async startInstall(input: { installId: number }): Promise<void> {
      await installs.startInstall(knex, input.installId);
    },

    async recordInstallPhase(input: { installId: number; phase: string }): Promise<void> {
      await installs.recordPhase(knex, input.installId, input.phase);
    },

    async installEvents(input: { installId: number; afterId: number }): Promise<installs.InstallEvent[]> {
      return installs.installEventsSince(knex, input.installId, input.afterId);
    },

    async finishInstall(input: { installId: number; status: 'succeeded' | 'failed' | 'aborted'; error: string | null }): Promise<void> {
      await installs.finishInstall(knex, input.installId, input);
    },

    /** Validate: the BMC answers, the node has a boot entry, and the image exists and matches its checksum. */
    validateInstall: keepAlive(async (input: { hostname: string; image: string }): Promise<{ power: string }> => {
      provisioner();
      const { driver, node } = await bmc(input.hostname);
      if (!(await getBootEntry(knex, input.hostname))) {
        // The entry is made from the node's MAC by the provisioner; make it now if it was not yet.
        await provisioner().reconcile();
        if (!(await getBootEntry(knex, input.hostname))) throw ApplicationFailure.nonRetryable(`${input.hostname} has no port MAC to boot from`, 'InstallRefused');
      }
      await checkImage(input.image);
      try {
        return { power: await driver.getPowerState(node, ctx) };
      } catch (err) {
        throw new Error(`the BMC did not answer: ${(err as Error).message}`);
      }
    }),

    /**
     * Writes the boot environment (a new generation) and the node's DHCP entry. For an install, the
     * generation is made once per attempt: a retried activity finds the one it made and writes the files again.
     */
    writeBootEnvironment: keepAlive(async (input: { installId: number; hostname: string; target: BootTarget }): Promise<{ generation: number }> => {
      const { target } = input;
      const generation = await knex.transaction(async (trx) => {
        await trx('installs').where({ id: input.installId }).forUpdate().first();
        if (target.kind === 'install') {
          const done = await trx('install_events')
            .where({ install_id: input.installId, kind: 'boot_env' })
            .whereRaw("(detail->>'attempt')::int = ?", [target.attempt])
            .first();
          if (done) return Number(done.detail.generation);
        }
        const entry = await setBootEnv(trx, input.hostname, {
          bootEnv: target.kind === 'install' ? installEnv(target.image) : 'local',
          enabled: target.kind !== 'disabled',
        });
        if (target.kind === 'install') {
          const token = installToken(deps.installTokenKey, (await trx('installs').select('task_id').where({ id: input.installId }).first()).task_id, entry.generation);
          await trx('installs').where({ id: input.installId }).update({ generation: entry.generation, token_hash: tokenHash(token) });
        } else {
          // The installer's token dies with its boot environment.
          await trx('installs').where({ id: input.installId }).update({ token_hash: null });
        }
        await installs.recordInstallEvent(trx, input.installId, 'boot_env', { ...target, generation: entry.generation, boot_env: entry.bootEnv, enabled: entry.enabled });
        return entry.generation;
      });
      await provisioner().reconcile();
      return { generation };
    }),

    /**
     * Before any power command: proves that what the machine will boot is this generation. The DHCP
     * server must offer the node's address and the boot URL (or, disabled, offer nothing), and the script
     * at that URL must be this generation. Retries within a minute: dnsmasq applies a file change shortly
     * after it is written, not at once.
     */
    confirmBootEnvironment: keepAlive(async (input: { hostname: string; generation: number; expect: 'install' | 'local' | 'disabled' }): Promise<{ address: string | null }> => {
      const config = provisioner().config;
      const entry = await getBootEntry(knex, input.hostname);
      if (!entry) throw ApplicationFailure.nonRetryable(`${input.hostname} has no boot entry`, 'InstallRefused');
      const expectedBoot = bootUrlTemplate(config.url);
      const deadline = Date.now() + CONFIRM_WITHIN_MS;
      let last = '';
      for (;;) {
        const seen = await observe(input.hostname);
        if (input.expect === 'disabled') {
          if (seen.offered === null) return { address: null };
          last = `the DHCP server still offers ${seen.offered} to ${entry.mac}`;
        } else if (seen.offered !== entry.address) {
          last = seen.offered === null ? `the DHCP server offers nothing to ${entry.mac}` : `the DHCP server offers ${seen.offered} to ${entry.mac}, not ${entry.address}`;
        } else if (seen.bootFile !== expectedBoot && seen.bootFile !== bootUrlOf(config.url, entry.mac)) {
          last = `the DHCP server offers the boot file ${seen.bootFile ?? '(none)'}, not ${expectedBoot}`;
        } else if (seen.problem) {
          last = seen.problem;
        } else if (seen.scriptGeneration !== input.generation || !seen.scriptEnv?.startsWith(input.expect)) {
          last = `the boot script is generation ${seen.scriptGeneration ?? '?'} (${seen.scriptEnv ?? '?'}), not ${input.generation} (${input.expect})`;
        } else {
          return { address: seen.offered };
        }
        Context.current().heartbeat(last);
        if (Date.now() > deadline) throw ApplicationFailure.retryable(`not confirmed within ${CONFIRM_WITHIN_MS / 1000}s: ${last}`, 'NotConfirmed');
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }),

    /**
     * Power cycle number `cycle` of an install, through the BMC. Done once: a retried or replayed step
     * finds the cycle recorded and does not power the machine again.
     */
    powerCycleForInstall: keepAlive(async (input: { installId: number; hostname: string; cycle: number }): Promise<{ done: 'now' | 'before' }> => {
      const row = await knex('installs').select('power_cycles').where({ id: input.installId }).first();
      if (Number(row?.power_cycles ?? 0) >= input.cycle) return { done: 'before' };
      const { driver, node } = await bmc(input.hostname);
      try {
        if ((await driver.getPowerState(node, ctx)) === 'power on') await driver.setPowerState(node, 'power off', ctx);
        await driver.setPowerState(node, 'power on', ctx);
      } catch (err) {
        refuse(err, 'DriverError');
      }
      await knex('installs').where({ id: input.installId }).update({ power_cycles: input.cycle });
      await recordPowerState(knex, input.hostname, 'power on');
      return { done: 'now' };
    }),

    powerOffForInstall: keepAlive(async (input: { hostname: string }): Promise<void> => {
      const { driver, node } = await bmc(input.hostname);
      try {
        await driver.setPowerState(node, 'power off', ctx);
      } catch (err) {
        refuse(err, 'DriverError');
      }
      await recordPowerState(knex, input.hostname, 'power off');
    }),

    /** The installed node boots from its disk and is powered on: both are what it keeps from now on. */
    async recordInstalledNode(input: { hostname: string; image: string }): Promise<void> {
      await recordBootConfig(knex, input.hostname, { boot_option: 'local', image: input.image, installed_at: new Date().toISOString() });
      await recordPowerState(knex, input.hostname, 'power on', { enforce: true });
    },
  };
}
