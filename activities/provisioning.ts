import fs from 'node:fs/promises';
import { ApplicationFailure } from '@temporalio/common';
import type { Knex } from 'knex';
import { driverNode, portsOf, recordBootConfig, recordPowerState } from '../src/db/enrollment-repo';
import { failQueuedTask, finishTask, startTask } from '../src/db/tasks-repo';
import { getDriver } from '../src/drivers';
import { DriverError, type PowerState, type PowerTarget } from '../src/drivers/types';
import type { SecretBox } from '../src/secrets/secret-box';
import type { AgentClient } from '../src/agent-client';
import { asFailure } from './failures';
import { keepAlive } from './heartbeat';

export interface ProvisioningDeps {
  knex: Knex;
  agents: AgentClient;
  /** Opens the node's driver secrets, sealed in the database. */
  secretBox: SecretBox;
}

/** A driver's or a validation's refusal is the node's problem to report, not a blip to retry. */
function refuse(err: unknown, type: string): never {
  if (err instanceof DriverError || err instanceof ApplicationFailure) {
    throw ApplicationFailure.nonRetryable((err as Error).message, type);
  }
  throw err;
}

/** image_source must answer: an http(s) URL that responds, or a file on this side. */
async function checkImageSource(source: string): Promise<void> {
  if (/^https?:\/\//.test(source)) {
    let res: Response;
    try {
      res = await fetch(source, { method: 'HEAD', redirect: 'follow', signal: AbortSignal.timeout(10_000) });
    } catch (err) {
      throw ApplicationFailure.nonRetryable(`instance_info.image_source ${source} is not reachable: ${(err as Error).cause ?? (err as Error).message}`, 'BootValidationFailed');
    }
    if (!res.ok) throw ApplicationFailure.nonRetryable(`instance_info.image_source ${source} answered ${res.status}`, 'BootValidationFailed');
    return;
  }
  const file = source.startsWith('file://') ? new URL(source).pathname : source;
  if (!file.startsWith('/')) {
    throw ApplicationFailure.nonRetryable(`instance_info.image_source must be an http(s) URL or a local file path, not ${source}`, 'BootValidationFailed');
  }
  try {
    await fs.access(file);
  } catch {
    throw ApplicationFailure.nonRetryable(`instance_info.image_source ${file} does not exist`, 'BootValidationFailed');
  }
}

export function createProvisioningActivities(deps: ProvisioningDeps) {
  const { knex } = deps;
  const ctx = { agents: deps.agents };

  async function load(name: string) {
    const { driver: driverName, node, record } = await driverNode(knex, deps.secretBox, name);
    const driver = getDriver(driverName);
    if (!driver) throw ApplicationFailure.nonRetryable(`node ${name} has the unknown driver ${driverName}`, 'DriverError');
    return { driver, node, record };
  }

  return {
    /** manage: the power interface against the BMC. The first power state seen is the one enforced later. */
    validatePower: keepAlive(async (input: { name: string }): Promise<PowerState> => {
      const { driver, node, record } = await load(input.name);
      try {
        const state = await driver.validate(node, ctx);
        await recordPowerState(knex, input.name, state, { enforce: record.enforcedPowerState === null });
        return state;
      } catch (err) {
        refuse(err, 'DriverError');
      }
    }),

    /** adopt, first half: the boot interface. Nothing is sent to the node. */
    validateBoot: keepAlive(async (input: { name: string }): Promise<void> => {
      const { record } = await load(input.name);
      const instance = record.instanceInfo ?? {};
      const source = instance.image_source;
      if (typeof source !== 'string' || !source) {
        throw ApplicationFailure.nonRetryable('instance_info.image_source is required to adopt a node', 'BootValidationFailed');
      }
      await checkImageSource(source);
      if (instance.boot_option === 'netboot') {
        const missing = ['deploy_kernel', 'deploy_ramdisk'].filter((k) => !record.driverInfo?.[k]);
        if (missing.length > 0) {
          throw ApplicationFailure.nonRetryable(`a node that boots from the network needs driver_info.${missing.join(' and driver_info.')}`, 'BootValidationFailed');
        }
      }
    }),

    /** adopt, second half (Ironic's takeover): record what the node needs to keep booting as it does. */
    takeOver: keepAlive(async (input: { name: string }): Promise<Record<string, unknown>> => {
      const { record } = await load(input.name);
      const instance = record.instanceInfo ?? {};
      const netboot = instance.boot_option === 'netboot';
      const config = {
        boot_option: netboot ? 'netboot' : 'local',
        image_source: instance.image_source,
        ...(netboot ? { deploy_kernel: record.driverInfo?.deploy_kernel, deploy_ramdisk: record.driverInfo?.deploy_ramdisk } : {}),
        mac_addresses: await portsOf(knex, input.name),
        taken_over_at: new Date().toISOString(),
      };
      await recordBootConfig(knex, input.name, config);
      return { boot_option: config.boot_option };
    }),

    /** A power change asked through the API: it also becomes the state that is enforced. */
    changePower: keepAlive(async (input: { name: string; target: PowerTarget }): Promise<PowerState> => {
      const { driver, node } = await load(input.name);
      try {
        if (input.target === 'rebooting') {
          await driver.reboot(node, ctx);
          await recordPowerState(knex, input.name, 'power on', { enforce: true });
          return 'power on';
        }
        await driver.setPowerState(node, input.target, ctx);
        await recordPowerState(knex, input.name, input.target, { enforce: true });
        return input.target;
      } catch (err) {
        refuse(err, 'DriverError');
      }
    }),

    /** Refuses (RequestExpired) when the API stopped waiting for the request: see tasks-repo's startTask. */
    async startTask(input: { id: string; kind: string; hostname: string; notAfter?: number }): Promise<void> {
      try {
        await startTask(knex, input);
      } catch (err) {
        throw asFailure(err);
      }
    },

    async failQueuedTask(input: { id: string; error: string }): Promise<void> {
      await failQueuedTask(knex, input.id, input.error);
    },

    async finishTask(input: { id: string; status: 'succeeded' | 'failed'; error?: string }): Promise<void> {
      await finishTask(knex, input.id, input);
    },
  };
}
