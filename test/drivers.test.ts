import { getDriver, checkDriverInfo, DRIVER_NAMES } from '../src/drivers';
import type { DriverNode } from '../src/drivers/types';
import { startBmc, type Bmc } from './support/bmc';

const ipmi = getDriver('ipmi')!;
const ctx = { agents: undefined as never };
let bmc: Bmc;

beforeAll(async () => {
  bmc = await startBmc();
});
afterAll(() => bmc.stop());

function nodeFor(info: Record<string, string>): DriverNode {
  const { visible, secrets } = checkDriverInfo(ipmi, info);
  return { hostname: 'bmc-node.test', driverInfo: visible, secrets, agent: null };
}

test('drivers are found by file name', () => {
  expect(DRIVER_NAMES).toEqual(['agent', 'ipmi']);
  expect(getDriver('redfish')).toBeUndefined();
});

test('driver_info is split into visible fields and write-only secrets, and every problem is named', () => {
  const { visible, secrets, problems } = checkDriverInfo(ipmi, { ipmi_address: '127.0.0.1', ipmi_password: 's3cret', ipmi_port: 'x', color: 'red' });
  expect(visible).toEqual({ ipmi_address: '127.0.0.1' });
  expect(secrets).toEqual({ ipmi_password: 's3cret' });
  expect(problems.map((p) => p.field).sort()).toEqual(['driver_info.color', 'driver_info.ipmi_port', 'driver_info.ipmi_username']);
});

test('the ipmi driver reads and changes the power of a real BMC', async () => {
  const node = nodeFor(bmc.driverInfo());
  expect(await ipmi.validate(node, ctx)).toBe('power off');

  await ipmi.setPowerState(node, 'power on', ctx);

  expect(await bmc.power()).toBe('power on');
  expect(await ipmi.getPowerState(node, ctx)).toBe('power on');
  await ipmi.setPowerState(node, 'power off', ctx);
  expect(await bmc.power()).toBe('power off');
});

test('wrong credentials are told apart from a BMC that does not answer', async () => {
  await expect(ipmi.validate(nodeFor({ ...bmc.driverInfo(), ipmi_password: 'wrong' }), ctx)).rejects.toThrow(
    `BMC ${bmc.address}:${bmc.port} refused the IPMI session: wrong ipmi_username or ipmi_password`,
  );
  await expect(ipmi.validate(nodeFor({ ...bmc.driverInfo(), ipmi_port: String(bmc.port + 1) }), ctx)).rejects.toThrow(
    `BMC ${bmc.address}:${bmc.port + 1} did not answer`,
  );
});
