import dgram from 'node:dgram';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { decodeReply, encodeDiscover, probeDhcp } from '../src/provisioning/dhcp-probe';
import { pxeLabAvailable, startPxeLab, type PxeLab } from './support/pxe-lab';
import { waitFor } from './support/wait-for';

let lab: PxeLab;
let http_: http.Server;
let bootUrl: string;
const requests: string[] = [];

beforeAll(async () => {
  // CI installs everything the lab needs: a missing piece is a failure, never a skip.
  const reason = await pxeLabAvailable();
  if (reason) throw new Error(`PXE lab unavailable: ${reason}`);
  lab = await startPxeLab({ name: 'probe' });
  http_ = http.createServer((req, res) => {
    requests.push(req.url ?? '');
    res.writeHead(200, { 'Content-Type': 'text/plain' }).end('#!ipxe\necho dhcp-probe test: netbooted\nexit\n');
  });
  await new Promise<void>((resolve) => http_.listen(0, lab.hostAddress, resolve));
  bootUrl = `http://${lab.hostAddress}:${(http_.address() as AddressInfo).port}/boot/\${mac:hexhyp}.ipxe`;
  await lab.startDnsmasq({ bootUrl });
}, 120_000);

afterAll(async () => {
  await new Promise((resolve) => (http_ ? http_.close(resolve) : resolve(undefined)));
  await lab?.teardown();
}, 60_000);

const net = () => lab.hostAddress.replace(/\.1$/, '');

/** As the provisioner writes them: a temp file and a rename, so dnsmasq never reads half a line. */
function writeHost(host: string, line: string): void {
  const dir = path.join(lab.provisioningDir, 'hosts.d');
  fs.writeFileSync(path.join(dir, `.${host}.tmp`), `${line}\n`);
  fs.renameSync(path.join(dir, `.${host}.tmp`), path.join(dir, host));
}

const probe = (mac: string, { ipxe = true, timeoutMs = 3000 } = {}) =>
  probeDhcp({ server: lab.dhcpServer, relayAddress: lab.hostAddress, mac, timeoutMs, ipxe });

const leaseEvents = () => {
  try {
    return fs.readFileSync(path.join(lab.provisioningDir, 'lease-events.log'), 'utf8');
  } catch {
    return '';
  }
};
const leaseFile = () => {
  try {
    return fs.readFileSync(lab.leaseFile, 'utf8');
  } catch {
    return '';
  }
};

// dnsmasq handles its inotify events before DHCP packets in each turn of its loop, and the kernel queues
// the event before rename() returns: the first probe after a write already sees it (no polling needed).

test('a hosts.d entry is offered its address and the iPXE boot URL as dnsmasq sends it', async () => {
  writeHost('host1', `52:54:00:b0:00:01,host1,${net()}.11,host1,1h`);

  const offer = await probe('52:54:00:b0:00:01');

  expect(offer).toEqual({ address: `${net()}.11`, bootFile: bootUrl, serverId: lab.dhcpServer });
  expect(offer?.bootFile).toContain('${mac:hexhyp}');
});

test('without option 175 the same kind of entry is offered its address but no boot file', async () => {
  writeHost('host1b', `52:54:00:b0:00:0b,host1b,${net()}.12,host1b,1h`);

  expect(await probe('52:54:00:b0:00:0b', { ipxe: false })).toEqual({ address: `${net()}.12`, bootFile: null, serverId: lab.dhcpServer });
});

test('a changed address (written by rename) is what the next probe sees', async () => {
  writeHost('host2', `52:54:00:b0:00:02,host2,${net()}.20,host2,1h`);
  expect((await probe('52:54:00:b0:00:02'))?.address).toBe(`${net()}.20`);

  writeHost('host2', `52:54:00:b0:00:02,host2,${net()}.21,host2,1h`);

  expect(await probe('52:54:00:b0:00:02')).toEqual({ address: `${net()}.21`, bootFile: bootUrl, serverId: lab.dhcpServer });
});

test('an ignore entry is offered nothing', async () => {
  writeHost('host3', `52:54:00:b0:00:03,host3,${net()}.30,host3,1h`);
  expect((await probe('52:54:00:b0:00:03'))?.address).toBe(`${net()}.30`);

  writeHost('host3', '52:54:00:b0:00:03,ignore');

  expect(await probe('52:54:00:b0:00:03', { timeoutMs: 1500 })).toBeNull();
  expect(lab.dnsmasqLog()).toMatch(/DHCPDISCOVER\(pxebr0\) 52:54:00:b0:00:03 ignored/);
});

test('an entry whose address another entry holds is refused by dnsmasq, and the probe shows it', async () => {
  writeHost('host4', `52:54:00:b0:00:04,host4,${net()}.40,host4,1h`);
  writeHost('host5', `52:54:00:b0:00:05,host5,${net()}.40,host5,1h`);

  expect((await probe('52:54:00:b0:00:04'))?.address).toBe(`${net()}.40`);
  // The second entry is dropped ("duplicate dhcp-host IP address"): its MAC is a stranger again.
  expect((await probe('52:54:00:b0:00:05'))?.address).not.toBe(`${net()}.40`);
  expect(lab.dnsmasqLog()).toContain(`duplicate dhcp-host IP address ${net()}.40`);
});

test('an unknown MAC is offered an address from the dynamic range, with the boot URL', async () => {
  const offer = await probe('52:54:00:b0:00:99');

  const [first, last] = lab.dynamicRange.split('-').map((a) => Number(a.split('.')[3]));
  const host = Number(offer?.address.split('.')[3]);
  expect(offer?.address.startsWith(`${net()}.`)).toBe(true);
  expect(host).toBeGreaterThanOrEqual(first!);
  expect(host).toBeLessThanOrEqual(last!);
  expect(offer?.bootFile).toBe(bootUrl);
  // dnsmasq picks a dynamic address from a hash of the MAC: asking again gives the same one.
  expect((await probe('52:54:00:b0:00:99'))?.address).toBe(offer?.address);
});

test('probes create no lease and run no lease script', async () => {
  await probe('52:54:00:b0:00:98');

  expect(leaseFile()).not.toContain('52:54:00:b0:00');
  expect(leaseEvents()).not.toContain('52:54:00:b0:00');
});

test('probes on one relay address at once are taken in turn, each answered for its own MAC', async () => {
  writeHost('host6', `52:54:00:b0:00:06,host6,${net()}.60,host6,1h`);
  writeHost('host7', `52:54:00:b0:00:07,host7,${net()}.70,host7,1h`);

  const [six, seven] = await Promise.all([probe('52:54:00:b0:00:06'), probe('52:54:00:b0:00:07')]);

  expect([six?.address, seven?.address]).toEqual([`${net()}.60`, `${net()}.70`]);
});

test('a probe waits while something else holds port 67 on the relay address, and says so if it never lets go', async () => {
  writeHost('host8', `52:54:00:b0:00:08,host8,${net()}.80,host8,1h`);
  const holder = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => holder.bind({ address: lab.hostAddress, port: 67, exclusive: true }, resolve));

  await expect(probe('52:54:00:b0:00:08', { timeoutMs: 500 })).rejects.toThrow(`DHCP probe cannot listen on ${lab.hostAddress}:67: another DHCP server, relay or probe held port 67`);
  const waiting = probe('52:54:00:b0:00:08', { timeoutMs: 5000 });
  await new Promise((r) => setTimeout(r, 300)); // the holder lets go while the probe is retrying
  await new Promise<void>((resolve) => holder.close(resolve));

  expect((await waiting)?.address).toBe(`${net()}.80`);
});

test('a boot file in the BOOTP file field, or in option 67 moved there by option overload, is read', () => {
  const reply = (file: string, options: number[]) => {
    const packet = encodeDiscover({ xid: 7, mac: '52:54:00:b0:00:aa', relayAddress: '10.0.0.1', ipxe: false });
    packet[0] = 2;
    Buffer.from([10, 0, 0, 50]).copy(packet, 16);
    packet.fill(0, 108, 236).write(file, 108, 'latin1');
    packet.fill(0, 240).set([...options, 255], 240);
    return decodeReply(packet);
  };

  expect(reply('http://x/boot.ipxe', [53, 1, 2])).toMatchObject({ op: 2, xid: 7, yiaddr: '10.0.0.50', file: 'http://x/boot.ipxe' });
  const overloaded = reply(String.fromCharCode(67, 3, 65, 66, 67, 255), [53, 1, 2, 52, 1, 1]);
  expect(overloaded?.file).toBe('');
  expect(overloaded?.options.get(67)?.toString()).toBe('ABC');
  expect(decodeReply(Buffer.alloc(100))).toBeNull();
});

test('a machine powered on through its BMC netboots: DHCP lease, then its per-MAC iPXE URL', async () => {
  const mac = '52:54:00:b0:01:01';
  writeHost('vm1', `${mac},vm1,${net()}.41,vm1,1h`);
  expect((await probe(mac))?.address).toBe(`${net()}.41`);
  // A read-only 9p share as the installer and the installed OS get them (qemu refuses to start on a bad one).
  const machine = await lab.addMachine({ name: 'vm1', mac, shares: [{ tag: 'project', path: __dirname }] });
  expect(await machine.ipmitool('chassis', 'power', 'status')).toContain('Chassis Power is off');

  await machine.ipmitool('chassis', 'power', 'on');

  const leased = await waitFor(async () => leaseEvents(), (log) => log.includes(`add ${mac} ${net()}.41 vm1`), { timeoutMs: 180_000, intervalMs: 250, what: 'the lease event' });
  await waitFor(async () => requests, (r) => r.includes('/boot/52-54-00-b0-01-01.ipxe'), { timeoutMs: 180_000, intervalMs: 250, what: 'the iPXE script request' });
  // A probe while the machine runs answers the same and leaves its lease alone.
  expect(await probe(mac)).toEqual({ address: `${net()}.41`, bootFile: bootUrl, serverId: lab.dhcpServer });
  expect(leaseEvents()).toBe(leased);

  await machine.ipmitool('chassis', 'power', 'off');

  await waitFor(async () => machine.vmRunning(), (running) => !running, { timeoutMs: 60_000, what: 'qemu to end' });
  expect(await machine.ipmitool('chassis', 'power', 'status')).toContain('Chassis Power is off');
}, 400_000);
