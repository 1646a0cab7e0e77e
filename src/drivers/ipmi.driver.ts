import { execFile } from 'node:child_process';
import { DriverError, type DriverNode, type PowerDriver, type PowerState } from './types';

const RETRIES = 2;
const RETRY_SECONDS = 1;
const POWER_CHANGE_TIMEOUT_MS = 30_000;

const isPort = (v: unknown) => (Number.isInteger(Number(v)) && Number(v) > 0 && Number(v) < 65536 ? undefined : 'must be a port number');
const isText = (v: unknown) => (typeof v === 'string' && v.length > 0 ? undefined : 'must be a non-empty string');

/**
 * IPMI v2 over lanplus through ipmitool. The password reaches ipmitool in its environment (-E), never
 * on its command line, where any process listing would show it. Cipher suite 3 by default: asking the
 * BMC for its list first costs ipmitool ten seconds against many BMCs.
 */
function ipmitool(node: DriverNode, command: string[], signal?: AbortSignal): Promise<string> {
  const info = node.driverInfo;
  const host = String(info.ipmi_address);
  const port = String(info.ipmi_port ?? 623);
  const args = ['-I', 'lanplus', '-H', host, '-p', port, '-U', String(info.ipmi_username), '-E', '-C', String(info.ipmi_cipher_suite ?? 3)];
  args.push('-R', String(RETRIES), '-N', String(RETRY_SECONDS), ...command);
  const started = Date.now();
  return new Promise((resolve, reject) => {
    execFile(
      'ipmitool',
      args,
      { env: { PATH: process.env.PATH, IPMI_PASSWORD: node.secrets.ipmi_password ?? '' }, timeout: 30_000, signal },
      (err, stdout, stderr) => {
        if (!err) return resolve(stdout);
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return reject(new DriverError('ipmitool is not installed on this worker'));
        const where = `BMC ${host}:${port}`;
        const detail = stderr.split('\n').filter((l) => l && !l.includes('Cipher Suites')).pop() ?? err.message;
        // ipmitool says the same for a refused session and for silence; the time it took tells them apart.
        if (/Unable to establish IPMI v2/.test(stderr)) {
          return reject(
            new DriverError(
              Date.now() - started >= RETRIES * RETRY_SECONDS * 900
                ? `${where} did not answer (unreachable or not an IPMI v2 BMC)`
                : `${where} refused the IPMI session: wrong ipmi_username or ipmi_password`,
            ),
          );
        }
        reject(new DriverError(`${where}: ${detail.trim()}`));
      },
    );
  });
}

async function powerState(node: DriverNode, signal?: AbortSignal): Promise<PowerState> {
  const out = await ipmitool(node, ['chassis', 'power', 'status'], signal);
  const match = /Chassis Power is (on|off)/.exec(out);
  if (!match) throw new DriverError(`unexpected answer from ipmitool: ${out.trim()}`);
  return match[1] === 'on' ? 'power on' : 'power off';
}

const driver: PowerDriver = {
  name: 'ipmi',
  fields: [
    { name: 'ipmi_address', required: true, check: isText },
    { name: 'ipmi_port', required: false, check: isPort },
    { name: 'ipmi_username', required: true, check: isText },
    { name: 'ipmi_password', required: true, secret: true, check: isText },
    { name: 'ipmi_cipher_suite', required: false, check: (v) => (['0', '1', '2', '3', '17'].includes(String(v)) ? undefined : 'must be 0, 1, 2, 3 or 17') },
    { name: 'deploy_kernel', required: false, check: isText },
    { name: 'deploy_ramdisk', required: false, check: isText },
  ],
  validate: (node) => powerState(node),
  getPowerState: (node, ctx) => powerState(node, ctx.signal),
  async setPowerState(node, target) {
    await ipmitool(node, ['chassis', 'power', target === 'power on' ? 'on' : 'off']);
    // Like Ironic, a power change is done when the BMC reports it, not when the command is accepted.
    const deadline = Date.now() + POWER_CHANGE_TIMEOUT_MS;
    for (;;) {
      if ((await powerState(node)) === target) return;
      if (Date.now() > deadline) throw new DriverError(`BMC did not reach ${target} within ${POWER_CHANGE_TIMEOUT_MS / 1000} s`);
      await new Promise((r) => setTimeout(r, 250));
    }
  },
  async reboot(node) {
    // A node that is off is started; one that is on is power-cycled.
    await ipmitool(node, ['chassis', 'power', (await powerState(node)) === 'power on' ? 'cycle' : 'on']);
  },
};

export default driver;
