/**
 * OS install on real machines: qemu VMs behind ipmi_sim BMCs (power through IPMI starts the VM), PXE
 * from dnsmasq in a namespace of the test's own, the project's busybox installer and a small bootable
 * disk image whose OS runs the agent bundle with the host's Node.js over virtio-9p. Driven with nodectl,
 * as an operator would. Under software emulation each install takes about a minute.
 */
import os from 'node:os';
import type { TestService } from './support/harness';
import { nodectl } from './support/nodectl';
import { ensurePxeArtifacts, type PxeArtifacts } from './support/pxe-artifacts';
import type { PxeLab, PxeMachine } from './support/pxe-lab';
import { startProvisionedService, type ProvisionedService } from './support/provisioned-service';
import { waitFor } from './support/wait-for';

jest.setTimeout(900_000);

let provisioned: ProvisionedService;
let lab: PxeLab;
let ts: TestService;
let artifacts: PxeArtifacts;

beforeAll(async () => {
  artifacts = await ensurePxeArtifacts();
  provisioned = await startProvisionedService('vm', {
    MAX_CONCURRENT_DEPLOYS: '1',
    INIT_WINDOW: '5m',
    INIT_CHECK_INTERVAL: '2s',
    AGENT_REQUEST_TIMEOUT: '20s',
  });
  ({ lab, ts } = provisioned);
}, 900_000);

afterAll(async () => {
  await provisioned?.stop();
});

let macs = 0x40;
async function machine(label: string): Promise<PxeMachine> {
  return lab.addMachine({
    name: label,
    mac: `52:54:00:a2:00:${(macs++).toString(16)}`,
    shares: [
      { tag: 'hostusr', path: artifacts.hostUsr },
      { tag: 'nodeagent', path: artifacts.agentBundleDir },
    ],
  });
}

async function createNode(label: string, vm: PxeMachine): Promise<string> {
  const name = ts.hostname(label);
  const { bmc } = vm;
  const created = await nodectl(ts, [
    'nodes', 'create', name, '--driver', 'ipmi',
    '--driver-info', `ipmi_address=${bmc.address}`, '--driver-info', `ipmi_port=${bmc.port}`,
    '--driver-info', `ipmi_username=${bmc.username}`, '--driver-info', `ipmi_password=${bmc.password}`,
    '--port', vm.mac,
  ]);
  expect(created).toMatchObject({ code: 0 });
  expect(await nodectl(ts, ['nodes', 'manage', name, '--wait'])).toMatchObject({ code: 0 });
  return name;
}

const node = async (name: string) => (await ts.api.get(`/api/v1/nodes/${name}`)).body;

test('a VM is deployed from manageable to active: it PXE-boots the installer, boots its disk, and its agent rejoins with facts from inside', async () => {
  const images = await nodectl(ts, [
    'images', 'create', 'tiny', '--kernel', artifacts.kernel, '--initrd', artifacts.installerInitrd, '--disk', artifacts.osImage, '--sha256', artifacts.osImageSha256,
  ]);
  expect(images).toMatchObject({ code: 0 });
  const vm = await machine('vm1');
  const name = await createNode('vm1', vm);

  const deployed = await nodectl(ts, ['nodes', 'deploy', name, '--image', 'tiny', '--wait']);
  expect(deployed).toMatchObject({ code: 0 });
  // The watch showed the phases as they went by, and a final table.
  for (const phase of ['dhcp_confirmed', 'power_cycled', 'installer_started', 'image_written', 'installed', 'rejoined']) expect(deployed.stderr + deployed.stdout).toContain(phase);
  expect(deployed.stdout).toMatch(new RegExp(`${name}\\s+active`));

  const active = await node(name);
  expect(active.state).toBe('active');
  expect(active.deploy).toMatchObject({ status: 'succeeded', image: 'tiny', power_cycles: 1 });
  expect(active.boot_config).toMatchObject({ boot_option: 'local', image: 'tiny' });
  // The facts come from the agent inside the VM: its kernel and its memory, not the host's.
  expect(active.facts.kernel.release).not.toBe(os.release());
  expect(active.facts.kernel.release).toMatch(/-amd64$/);
  expect(active.facts.memory.total_bytes).toBeLessThan(1024 ** 3);
  const serial = await vm.readSerial();
  expect(serial).toContain('booted from disk');
  expect(await vm.ipmitool('chassis', 'power', 'status')).toContain('on');
});

test('two VMs under a cap of one: the second waits visibly in the queue, then both are installed', async () => {
  const vms = [await machine('vm2'), await machine('vm3')];
  const names = [await createNode('vm2', vms[0]!), await createNode('vm3', vms[1]!)];
  const run = nodectl(ts, ['nodes', 'deploy', ...names, '--image', 'tiny', '--wait']);

  // While one installs, the other is queued with its position; its machine is not powered.
  const [waitingFor, waiting] = await waitFor(
    async () => Promise.all(names.map(node)),
    (nodes) => nodes.some((n) => n.deploy?.status === 'running') && nodes.some((n) => n.deploy?.status === 'queued' && n.deploy.queue_position === 1),
    { what: 'one install running and one queued', timeoutMs: 300_000, intervalMs: 250 },
  ).then((nodes) => (nodes[0]!.deploy.status === 'queued' ? [nodes[1]!, nodes[0]!] : [nodes[0]!, nodes[1]!]));
  expect(waitingFor.deploy.status).toBe('running');
  const queuedVm = vms[names.indexOf(waiting.hostname)]!;
  expect(await queuedVm.ipmitool('chassis', 'power', 'status')).toContain('off');

  const result = await run;
  expect(result).toMatchObject({ code: 0 });
  for (const name of names) expect(result.stdout).toMatch(new RegExp(`${name}\\s+active`));
  const [a, b] = await Promise.all(names.map(node));
  expect([a.state, b.state]).toEqual(['active', 'active']);
  // One at a time: the second's power cycle came after the first had rejoined.
  const at = (n: typeof a, phase: string) => Date.parse(n.deploy.phases.find((p: { phase: string }) => p.phase === phase).at);
  const [first, second] = at(a, 'power_cycled') < at(b, 'power_cycled') ? [a, b] : [b, a];
  expect(at(second, 'power_cycled')).toBeGreaterThanOrEqual(at(first, 'rejoined'));
});
