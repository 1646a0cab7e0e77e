/**
 * OS install through the real provisioning network: dnsmasq in a namespace of the test's own, ipmi_sim
 * BMCs, the service with its provisioner and machine listener. Here the test plays the machine over the
 * very endpoints a PXE-booted machine uses (script, callbacks, agent announce); test/os-install-vm.test.ts
 * boots real VMs through the same path.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { probeDhcp } from '../src/provisioning/dhcp-probe';
import { bootUrlTemplate, parseScriptHeader } from '../src/provisioning/ipxe-script';
import { startBmc, type Bmc } from './support/bmc';
import { startTestAgent, type TestAgent, type TestService } from './support/harness';
import type { HttpResponse } from './support/http-client';
import { killHard, runTs, type Proc } from './support/processes';
import { startProvisionedService, type ProvisionedService } from './support/provisioned-service';
import type { PxeLab } from './support/pxe-lab';
import { waitFor } from './support/wait-for';

// Every test drives whole installs through a real BMC and dnsmasq; on a loaded machine that is minutes.
jest.setTimeout(600_000);

let a: ProvisionedService;
let lab: PxeLab;
let ts: TestService;
let machineUrl: string;
const bmcs: Bmc[] = [];
const agents: TestAgent[] = [];
let imageDir: string;
let macCounter = 0x10;

beforeAll(async () => {
  a = await startProvisionedService('install', {
    MAX_CONCURRENT_DEPLOYS: '1',
    // The machine here is the test: it answers at once. Long deadlines keep a loaded machine from failing a phase.
    DEPLOY_LEASE_TIMEOUT: '5m',
    DEPLOY_INSTALLER_TIMEOUT: '5m',
    DEPLOY_BOOT_TIMEOUT: '5m',
  });
  ({ lab, ts, url: machineUrl } = a);
  imageDir = fs.mkdtempSync(path.join(os.tmpdir(), 'nl-image-'));
  for (const part of ['kernel', 'initrd', 'disk']) fs.writeFileSync(path.join(imageDir, part), `${part} of a tiny image\n`.repeat(100));
  const created = await ts.api.post('/api/v1/images', imageBody('tiny'));
  expect(created.status).toBe(201);
}, 180_000);

afterAll(async () => {
  await Promise.all(agents.map((a) => a.stop()));
  await a?.stop();
  await Promise.all(bmcs.map((b) => b.stop()));
  if (imageDir) fs.rmSync(imageDir, { recursive: true, force: true });
});

function imageBody(name: string) {
  const disk = path.join(imageDir, 'disk');
  return {
    name,
    kernel: path.join(imageDir, 'kernel'),
    initrd: path.join(imageDir, 'initrd'),
    disk,
    sha256: createHash('sha256').update(fs.readFileSync(disk)).digest('hex'),
  };
}
const diskSha = () => imageBody('x').sha256;
const nextMac = () => `52:54:00:a1:00:${(macCounter++).toString(16).padStart(2, '0')}`;
const hexhyp = (mac: string) => mac.replace(/:/g, '-');

async function enrolled(label: string, options: { ports?: boolean; driver?: 'ipmi' | 'agent' } = {}): Promise<{ name: string; mac: string; bmc?: Bmc }> {
  const name = ts.hostname(label);
  const mac = nextMac();
  let bmc: Bmc | undefined;
  let driverInfo: Record<string, string>;
  if ((options.driver ?? 'ipmi') === 'ipmi') {
    bmc = await startBmc();
    bmcs.push(bmc);
    driverInfo = bmc.driverInfo();
  } else {
    driverInfo = { agent_fingerprint: `SHA256:${'A'.repeat(43)}` };
  }
  const res = await ts.api.post('/api/v1/nodes', {
    name,
    driver: options.driver ?? 'ipmi',
    driver_info: driverInfo,
    ...(options.ports === false ? {} : { ports: [{ address: mac }] }),
  });
  expect(res.status).toBe(201);
  return { name, mac, bmc };
}

async function manageable(label: string): Promise<{ name: string; mac: string; bmc: Bmc }> {
  const node = await enrolled(label);
  expect((await provision(node.name, { target: 'manage' })).status).toBe(202);
  await waitState(node.name, 'manageable');
  return node as { name: string; mac: string; bmc: Bmc };
}

const provision = (name: string, body: Record<string, unknown>) => ts.api.request('PUT', `/api/v1/nodes/${name}/states/provision`, { json: body });
const getNode = async (name: string) => (await ts.api.get(`/api/v1/nodes/${name}`)).body;
const waitState = (name: string, state: string, timeoutMs = 120_000) =>
  waitFor(() => getNode(name), (n) => n.state === state, { what: `${name} to be ${state}`, timeoutMs, intervalMs: 200 });
const waitPhase = (name: string, phase: string, timeoutMs = 120_000) =>
  waitFor(() => getNode(name), (n) => (n.deploy?.phases ?? []).some((p: { phase: string }) => p.phase === phase) || n.state === 'deploy failed', {
    what: `${name} to reach ${phase}`,
    timeoutMs,
    intervalMs: 200,
  });

/** What the machine's iPXE fetches (no confirm flag: this is the machine). */
const fetchScript = async (mac: string) => {
  const res = await fetch(`${machineUrl}/boot/${hexhyp(mac)}.ipxe`);
  return { status: res.status, text: await res.text() };
};
const tokenOf = (script: string) => /nl\.token=(\S+)/.exec(script)?.[1];
async function callback(token: string, body: Record<string, unknown>) {
  const res = await fetch(`${machineUrl}/provisioning/v1/callback`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

function expectError(res: HttpResponse, status: number, text: string | RegExp) {
  expect(res.status).toBe(status);
  expect(JSON.stringify(res.body.error)).toMatch(text);
}

describe('DHCP and DNS kept in step with the inventory', () => {
  test('enrolling a MAC gives it a fixed address, a DNS name and a local boot script; deleting it disables the entry', async () => {
    const node = await enrolled('dhcp');
    const entry = await waitFor(() => getNode(node.name), (n) => n.boot !== null, { what: 'a boot entry' });
    expect(entry.boot).toMatchObject({ mac: node.mac, boot_env: 'local', dhcp_enabled: true });
    const hostsFile = path.join(lab.provisioningDir, 'hosts.d', node.name);
    await waitFor(async () => fs.existsSync(hostsFile), Boolean, { what: 'the hosts.d file' });
    expect(fs.readFileSync(hostsFile, 'utf8')).toBe(`${node.mac},${node.name},${entry.boot.address},${node.name},1h\n`);
    expect(fs.readFileSync(path.join(lab.provisioningDir, 'dns.d', node.name), 'utf8')).toBe(`${entry.boot.address} ${node.name}\n`);
    const offer = await waitFor(
      () => probeDhcp({ server: lab.dhcpServer, relayAddress: lab.hostAddress, mac: node.mac, timeoutMs: 2_000, ipxe: true }),
      (o) => o?.address === entry.boot.address,
      { what: 'dnsmasq to offer the fixed address', timeoutMs: 30_000 },
    );
    expect(offer?.bootFile).toBe(bootUrlTemplate(machineUrl));
    const script = await fetchScript(node.mac);
    expect(script.status).toBe(200);
    expect(parseScriptHeader(script.text)).toMatchObject({ hostname: node.name, bootEnv: 'local' });
    expect(script.text).toContain('sanboot --no-describe --drive 0x80 || exit');

    // An unknown MAC gets nothing to install.
    expect((await fetchScript('52:54:00:ff:ff:fe')).status).toBe(404);

    // Changing the MAC moves the entry to the new MAC, at a fresh address (dnsmasq serves a changed file's
    // old line until it restarts, so the old address is retired rather than handed to the new MAC).
    const newMac = nextMac();
    expect((await ts.api.request('PATCH', `/api/v1/nodes/${node.name}`, { json: { ports: [{ address: newMac }] } })).status).toBe(200);
    const moved = await waitFor(() => getNode(node.name), (n) => n.boot?.mac === newMac, { what: 'the entry to move to the new MAC' });
    expect(moved.boot.address).not.toBe(entry.boot.address);
    await waitFor(
      () => probeDhcp({ server: lab.dhcpServer, relayAddress: lab.hostAddress, mac: newMac, timeoutMs: 2_000, ipxe: true }),
      (o) => o?.address === moved.boot.address,
      { what: 'the new MAC to be offered its fixed address', timeoutMs: 30_000 },
    );
    expect(fs.readFileSync(path.join(lab.provisioningDir, 'hosts.d', `retired-${hexhyp(node.mac)}`), 'utf8')).toBe(`${node.mac},ignore\n`);

    // A node left without ports is served no more.
    expect((await ts.api.request('PATCH', `/api/v1/nodes/${node.name}`, { json: { ports: [] } })).status).toBe(200);
    expect((await waitFor(() => getNode(node.name), (n) => n.boot === null, { what: 'the entry to go with the last port' })).boot).toBeNull();
    await waitFor(
      () => probeDhcp({ server: lab.dhcpServer, relayAddress: lab.hostAddress, mac: newMac, timeoutMs: 2_000, ipxe: true }),
      (o) => o === null,
      { what: 'dnsmasq to stop offering the portless node an address', timeoutMs: 30_000 },
    );
    expect((await ts.api.request('PATCH', `/api/v1/nodes/${node.name}`, { json: { ports: [{ address: newMac }] } })).status).toBe(200);
    await waitFor(() => getNode(node.name), (n) => n.boot?.mac === newMac, { what: 'the port to be served again' });

    expect((await ts.api.request('DELETE', `/api/v1/nodes/${node.name}`)).status).toBe(204);
    await waitFor(async () => fs.readFileSync(hostsFile, 'utf8'), (t) => t === `${newMac},ignore\n`, { what: 'the entry to be disabled' });
    // The writer disables the hosts.d entry first, then removes the DNS name: the second write may follow.
    await waitFor(async () => fs.existsSync(path.join(lab.provisioningDir, 'dns.d', node.name)), (exists) => !exists, { what: 'the DNS name to go' });
    await waitFor(
      () => probeDhcp({ server: lab.dhcpServer, relayAddress: lab.hostAddress, mac: newMac, timeoutMs: 2_000, ipxe: true }),
      (o) => o === null,
      { what: 'dnsmasq to stop offering the deleted node an address', timeoutMs: 30_000 },
    );
  });
});

describe('refusals change nothing', () => {
  test('unknown image, no MAC, no BMC, wrong state and malformed requests are 4xx naming what is wrong', async () => {
    const ready = await manageable('ready');
    const noMac = await enrolled('nomac', { ports: false });
    const noBmc = await enrolled('nobmc', { driver: 'agent' });
    const fresh = await enrolled('fresh');
    const installsBefore = (await ts.api.get('/api/v1/images/tiny')).status;

    expectError(await provision(ready.name, { target: 'deploy', image: 'no-such-image' }), 404, /no image no-such-image/);
    expectError(await provision(ready.name, { target: 'deploy' }), 400, /image/);
    expectError(await provision(ready.name, { target: 'manage', image: 'tiny' }), 400, /image/);
    expectError(await provision(ready.name, { target: 'deploy', image: 'Bad Name!' }), 400, /image/);
    expectError(await provision(noMac.name, { target: 'deploy', image: 'tiny' }), 409, /has no port MAC/);
    expectError(await provision(noBmc.name, { target: 'deploy', image: 'tiny' }), 409, /has no BMC/);
    expectError(await provision(fresh.name, { target: 'deploy', image: 'tiny' }), 409, /is enroll/);
    expectError(await provision(ready.name, { target: 'rebuild', image: 'tiny' }), 409, /is manageable/);
    expectError(await provision(ready.name, { target: 'abort' }), 409, /abort is not allowed while .* is manageable/);
    const bulk = await ts.api.post('/api/v1/deploy/nodes', { nodes: [ready.name, noMac.name, 'ghost.test'], image: 'tiny' });
    expect(bulk.status).toBe(404);
    expect(bulk.body.error.offenders.map((o: { node: string }) => o.node).sort()).toEqual([noMac.name, 'ghost.test'].sort());
    expectError(await ts.api.post('/api/v1/deploy/nodes', { nodes: [ready.name] }), 400, /image/);

    for (const n of [ready, noMac, noBmc, fresh]) expect((await getNode(n.name)).deploy).toBeNull();
    expect((await getNode(ready.name)).state).toBe('manageable');
    expect(installsBefore).toBe(200);
  });
});

describe('an install, phase by phase', () => {
  test('the boot environment is proven before the power cycle; a stale token changes nothing; the installed OS rejoins and the node becomes active', async () => {
    const node = await manageable('deploy');
    const started = await provision(node.name, { target: 'deploy', image: 'tiny' });
    expect(started.status).toBe(202);

    const cycled = await waitPhase(node.name, 'power_cycled');
    const phases = cycled.deploy.phases.map((p: { phase: string }) => p.phase);
    // History: the boot environment was written and confirmed before the BMC was told anything.
    expect(phases.slice(0, 3)).toEqual(['boot_env_written', 'dhcp_confirmed', 'power_cycled']);
    expect(cycled.state).toBe('deploying');
    expect(await node.bmc.power()).toBe('power on');

    const script = await fetchScript(node.mac);
    const header = parseScriptHeader(script.text)!;
    expect(header).toMatchObject({ hostname: node.name, bootEnv: 'install:tiny' });
    expect(script.text).toContain(`nl.sha256=${diskSha()}`);
    const token = tokenOf(script.text)!;
    expect(token).toBeTruthy();

    // A wrong token is acknowledged and changes nothing.
    const wrong = await callback(`${token.slice(0, -2)}xx`, { event: 'failed', reason: 'forged' });
    expect(wrong).toMatchObject({ status: 200, body: { applied: false } });
    expect(await callback(token, { event: 'installing' })).toMatchObject({ status: 200, body: { applied: true } });
    await waitPhase(node.name, 'installer_started');
    expect((await getNode(node.name)).state).toBe('deploying');

    expect((await callback(token, { event: 'image_written', sha256: diskSha() })).body.applied).toBe(true);
    // The installed OS's agent: its key was made at install time, and comes with `installed`.
    const agent = await startTestAgent(ts, node.name, { serverUrl: machineUrl });
    agents.push(agent);
    const installed = await callback(token, { event: 'installed', sha256: diskSha(), agent_fingerprint: agent.fingerprint });
    expect(installed.body.applied).toBe(true);
    // Local boot is set before the answer: the installer's reboot finds local boot, and its old token is stale.
    const after = await fetchScript(node.mac);
    expect(parseScriptHeader(after.text)).toMatchObject({ bootEnv: 'local', generation: header.generation + 1 });
    expect(await callback(token, { event: 'failed', reason: 'too late' })).toMatchObject({ body: { applied: false } });

    const active = await waitState(node.name, 'active');
    expect(active.deploy).toMatchObject({ status: 'succeeded', image: 'tiny', error: null });
    expect(active.deploy.phases.map((p: { phase: string }) => p.phase)).toEqual([
      'boot_env_written',
      'dhcp_confirmed',
      'power_cycled',
      'lease_seen',
      'installer_started',
      'image_written',
      'installed',
      'booting_local',
      'rejoined',
    ]);
    expect(active.fingerprint).toBe(agent.fingerprint);
    expect(active.facts).not.toBeNull();
    expect(active.events.map((e: { to_state: string }) => e.to_state)).toEqual(expect.arrayContaining(['deploying', 'initializing', 'active']));
    expect(active.boot_config).toMatchObject({ boot_option: 'local', image: 'tiny' });
  });

  test('an installer failure fails the deploy naming the phase, boots local and powers off; a re-deploy then works', async () => {
    const node = await manageable('fails');
    expect((await provision(node.name, { target: 'deploy', image: 'tiny' })).status).toBe(202);
    await waitPhase(node.name, 'power_cycled');
    const token = tokenOf((await fetchScript(node.mac)).text)!;
    await callback(token, { event: 'installing' });
    await callback(token, { event: 'failed', reason: 'wget: server returned error: HTTP/1.1 500' });

    const failed = await waitState(node.name, 'deploy failed');
    expect(failed.last_error).toMatch(/^image_written: the installer failed: wget: server returned error/);
    expect(failed.deploy).toMatchObject({ status: 'failed' });
    expect(failed.boot).toMatchObject({ boot_env: 'local', dhcp_enabled: true });
    await waitFor(() => node.bmc.power(), (p) => p === 'power off', { what: 'the machine to be powered off' });

    expect((await provision(node.name, { target: 'deploy', image: 'tiny' })).status).toBe(202);
    await waitFor(() => getNode(node.name), (n) => n.deploy?.status === 'running' && n.deploy.phases.some((p: { phase: string }) => p.phase === 'power_cycled'), {
      what: 'the second deploy to power-cycle',
    });
    const second = (await fetchScript(node.mac)).text;
    const agent = await startTestAgent(ts, node.name, { serverUrl: machineUrl });
    agents.push(agent);
    const again = tokenOf(second)!;
    expect(again).not.toBe(token);
    await callback(again, { event: 'installing' });
    await callback(again, { event: 'installed', sha256: diskSha(), agent_fingerprint: agent.fingerprint });
    expect(await waitState(node.name, 'active')).toMatchObject({ last_error: null, deploy: { status: 'succeeded' } });
  });

  test('a second fetch of the installer in one generation is a PXE loop: the deploy fails with that name', async () => {
    const node = await manageable('loop');
    expect((await provision(node.name, { target: 'deploy', image: 'tiny' })).status).toBe(202);
    await waitPhase(node.name, 'power_cycled');
    expect((await fetchScript(node.mac)).text).toContain('boot=install:tiny');
    // The machine boots the network again before the installer said installed: it is looping.
    const second = await fetchScript(node.mac);
    expect(second.text).toContain('sanboot');
    const failed = await waitState(node.name, 'deploy failed');
    expect(failed.last_error).toMatch(/^pxe_loop: the installer of generation \d+ was fetched again/);
  });

  test('abort stops the install: boot local, DHCP entry disabled, power off, deploy failed', async () => {
    const node = await manageable('abort');
    expect((await provision(node.name, { target: 'deploy', image: 'tiny' })).status).toBe(202);
    const running = await waitPhase(node.name, 'power_cycled');
    const aborted = await provision(node.name, { target: 'abort' });
    expect(aborted.status).toBe(202);
    expect(aborted.body.task_id).toBe(running.deploy.task_id);
    const failed = await waitState(node.name, 'deploy failed');
    expect(failed.last_error).toMatch(/^aborted by the operator/);
    expect(failed.deploy.status).toBe('aborted');
    expect(failed.boot).toMatchObject({ boot_env: 'local', dhcp_enabled: false });
    expect(fs.readFileSync(path.join(lab.provisioningDir, 'hosts.d', node.name), 'utf8')).toBe(`${node.mac},ignore\n`);
    expect(await probeDhcp({ server: lab.dhcpServer, relayAddress: lab.hostAddress, mac: node.mac, timeoutMs: 2_000, ipxe: true })).toBeNull();
    expect(await node.bmc.power()).toBe('power off');
    expect((await fetchScript(node.mac)).status).toBe(404);
  });

  test('two deploys under a cap of one: one waits visibly in the queue, then runs', async () => {
    const a = await manageable('capa');
    const b = await manageable('capb');
    const bulk = await ts.api.post('/api/v1/deploy/nodes', { nodes: [a.name, b.name], image: 'tiny' });
    expect(bulk.status).toBe(202);
    // Whichever node's workflow asks first gets the one slot (both rows of one request ask at once).
    const cycled = (n: any) => n.deploy?.phases.some((p: { phase: string }) => p.phase === 'power_cycled');
    const nodes = await waitFor(
      async () => [await getNode(a.name), await getNode(b.name)],
      ([x, y]) => (cycled(x) && y.deploy?.queue_position === 1) || (cycled(y) && x.deploy?.queue_position === 1),
      { what: 'one to run and the other to wait in the queue', timeoutMs: 120_000, intervalMs: 200 },
    );
    const [running, waiting] = cycled(nodes[0]) ? [a, b] : [b, a];
    const waitingNode = nodes[running === a ? 1 : 0];
    expect(waitingNode.deploy).toMatchObject({ status: 'queued', phase: null, queue_position: 1 });
    expect(await waiting.bmc.power()).toBe('power off');

    const token = tokenOf((await fetchScript(running.mac)).text)!;
    await callback(token, { event: 'failed', reason: 'disk not found' });
    await waitState(running.name, 'deploy failed');
    const next = await waitPhase(waiting.name, 'power_cycled');
    expect(next.deploy.status).toBe('running');
    await provision(waiting.name, { target: 'abort' });
    await waitState(waiting.name, 'deploy failed');
  });
});


/** A lab and a service on it with settings of its own, and the test image registered. */
async function provisionedService(label: string, env: Record<string, string>, options: Parameters<typeof startProvisionedService>[2] = {}) {
  const service = await startProvisionedService(label, env, options);
  expect((await service.ts.api.post('/api/v1/images', imageBody('tiny'))).status).toBe(201);
  return service;
}

describe('a phase that times out', () => {
  let b: Awaited<ReturnType<typeof provisionedService>>;
  beforeAll(async () => {
    b = await provisionedService('timeout', { DEPLOY_LEASE_TIMEOUT: '2s', DEPLOY_POWER_CYCLES: '2' });
  }, 180_000);
  afterAll(async () => {
    await b?.stop();
  });

  test('a machine that never boots is power-cycled again, then the deploy fails naming the phase, powered off', async () => {
    const bmc = await startBmc();
    bmcs.push(bmc);
    const name = b.ts.hostname('silent');
    const mac = nextMac();
    expect((await b.ts.api.post('/api/v1/nodes', { name, driver: 'ipmi', driver_info: bmc.driverInfo(), ports: [{ address: mac }] })).status).toBe(201);
    await b.ts.api.request('PUT', `/api/v1/nodes/${name}/states/provision`, { json: { target: 'manage' } });
    await waitFor(async () => (await b.ts.api.get(`/api/v1/nodes/${name}`)).body.state, (s) => s === 'manageable', { what: 'manageable' });
    expect((await b.ts.api.request('PUT', `/api/v1/nodes/${name}/states/provision`, { json: { target: 'deploy', image: 'tiny' } })).status).toBe(202);

    const failed = await waitFor(async () => (await b.ts.api.get(`/api/v1/nodes/${name}`)).body, (n) => n.state === 'deploy failed', {
      what: 'the deploy to fail',
      timeoutMs: 120_000,
      intervalMs: 200,
    });
    expect(failed.last_error).toBe('lease_seen: not reached within 2s, after 2 power cycle(s)');
    expect(failed.deploy).toMatchObject({ status: 'failed', power_cycles: 2 });
    const phases = failed.deploy.phases.map((p: { phase: string }) => p.phase);
    expect(phases.filter((p: string) => p === 'power_cycled')).toHaveLength(2);
    expect(await bmc.power()).toBe('power off');
    expect(failed.boot).toMatchObject({ boot_env: 'local', dhcp_enabled: true });
  });
});

describe('a slow writer and a killed worker', () => {
  let c: Awaited<ReturnType<typeof provisionedService>>;
  let staging: string;
  let worker: Proc | undefined;
  let copier: NodeJS.Timeout | undefined;
  /** When each file reached dnsmasq's directory. */
  const delivered = new Map<string, number>();
  const WRITER_DELAY_MS = 6_000;

  const startWorker = () => {
    const cfg = c.ts.config;
    worker = runTs('src/main.ts', ['--role', 'worker'], {
      ...c.provisioningEnv,
      DATA_DIR: cfg.dataDir,
      DATABASE_URL: cfg.databaseUrl!,
      TEMPORAL_ADDRESS: c.ts.service.temporalAddress,
      TASK_QUEUE: cfg.taskQueue,
      NODE_SERVICES: '',
    });
    return waitFor(
      async () => (worker!.child.exitCode !== null ? 'exited' : worker!.output()),
      (out) => out === 'exited' || out.includes('is running'),
      { what: 'the worker to start', timeoutMs: 120_000, intervalMs: 200 },
    ).then((out) => {
      if (out === 'exited') throw new Error(`worker exited:\n${worker!.output()}`);
    });
  };

  beforeAll(async () => {
    // The provisioner writes here; dnsmasq sees each file only WRITER_DELAY_MS after it changed: a slow writer.
    c = await provisionedService('slow', {}, { role: 'api', provisioningDir: (l) => path.join(l.dir, 'staging') });
    staging = c.provisioningEnv.PROVISIONING_DIR!;
    const seen = new Map<string, { content: string; since: number }>();
    copier = setInterval(() => {
      for (const sub of ['hosts.d', 'dns.d']) {
        const from = path.join(staging, sub);
        if (!fs.existsSync(from)) continue;
        for (const file of fs.readdirSync(from).filter((f) => !f.startsWith('.'))) {
          const content = fs.readFileSync(path.join(from, file), 'utf8');
          const key = `${sub}/${file}`;
          const entry = seen.get(key);
          if (!entry || entry.content !== content) seen.set(key, { content, since: Date.now() });
          else if (Date.now() - entry.since >= WRITER_DELAY_MS) {
            const to = path.join(c.lab.provisioningDir, sub, file);
            if (fs.existsSync(to) && fs.readFileSync(to, 'utf8') === content) continue;
            fs.writeFileSync(`${to}.tmp`, content);
            fs.renameSync(`${to}.tmp`, to);
            delivered.set(key, Date.now());
          }
        }
      }
    }, 100);
    await startWorker();
  }, 240_000);
  afterAll(async () => {
    clearInterval(copier);
    killHard(worker);
    await c?.stop();
  });

  const api = () => c.ts.api;
  const node = async (name: string) => (await api().get(`/api/v1/nodes/${name}`)).body;

  async function manageableHere(label: string) {
    const bmc = await startBmc();
    bmcs.push(bmc);
    const name = c.ts.hostname(label);
    const mac = nextMac();
    expect((await api().post('/api/v1/nodes', { name, driver: 'ipmi', driver_info: bmc.driverInfo(), ports: [{ address: mac }] })).status).toBe(201);
    await api().request('PUT', `/api/v1/nodes/${name}/states/provision`, { json: { target: 'manage' } });
    await waitFor(() => node(name), (n) => n.state === 'manageable', { what: `${name} to be manageable`, intervalMs: 200 });
    return { name, mac, bmc };
  }

  test('with a slow writer, the DHCP entry is confirmed before the power command, and the power command waits for it', async () => {
    const { name, bmc } = await manageableHere('slowdhcp');
    expect((await api().request('PUT', `/api/v1/nodes/${name}/states/provision`, { json: { target: 'deploy', image: 'tiny' } })).status).toBe(202);
    const key = `hosts.d/${name}`;
    // While dnsmasq does not know the node yet, the machine stays off.
    while (!delivered.has(key)) {
      expect(await bmc.power()).toBe('power off');
      expect((await node(name)).deploy?.phases.map((p: { phase: string }) => p.phase) ?? []).not.toContain('power_cycled');
      await new Promise((r) => setTimeout(r, 200));
    }
    const cycled = await waitFor(() => node(name), (n) => n.deploy?.phases.some((p: { phase: string }) => p.phase === 'power_cycled'), {
      what: 'the power cycle',
      timeoutMs: 120_000,
      intervalMs: 200,
    });
    const at = Object.fromEntries(cycled.deploy.phases.map((p: { phase: string; at: string }) => [p.phase, Date.parse(p.at)]));
    expect(at.dhcp_confirmed).toBeGreaterThanOrEqual(delivered.get(key)! - 1_000);
    expect(at.power_cycled).toBeGreaterThanOrEqual(at.dhcp_confirmed);
    // The workflow's own history: the confirmation activity completed before the power activity was scheduled.
    const history = await c.ts.temporal.workflow.getHandle(`node:${name}`).fetchHistory();
    const order = (history.events ?? [])
      .map((e) => e.activityTaskScheduledEventAttributes?.activityType?.name)
      .filter((n): n is string => n === 'confirmBootEnvironment' || n === 'powerCycleForInstall');
    expect(order.slice(0, 2)).toEqual(['confirmBootEnvironment', 'powerCycleForInstall']);
    await api().request('PUT', `/api/v1/nodes/${name}/states/provision`, { json: { target: 'abort' } });
    await waitFor(() => node(name), (n) => n.state === 'deploy failed', { what: 'the abort', timeoutMs: 120_000 });
  });

  test('a worker killed while the install waits resumes without a second power cycle, and a callback sent meanwhile is not lost', async () => {
    const { name, mac } = await manageableHere('crash');
    await waitFor(async () => delivered.has(`hosts.d/${name}`), Boolean, { what: 'the DHCP entry to reach dnsmasq', timeoutMs: 60_000 });
    expect((await api().request('PUT', `/api/v1/nodes/${name}/states/provision`, { json: { target: 'deploy', image: 'tiny' } })).status).toBe(202);
    await waitFor(() => node(name), (n) => n.deploy?.phases.some((p: { phase: string }) => p.phase === 'power_cycled'), {
      what: 'the power cycle',
      timeoutMs: 120_000,
      intervalMs: 200,
    });
    const res = await fetch(`${c.url}/boot/${hexhyp(mac)}.ipxe`);
    const token = tokenOf(await res.text())!;

    killHard(worker);
    await worker!.exited;
    // The installer calls back while no worker runs: recorded and acknowledged all the same.
    const sent = await fetch(`${c.url}/provisioning/v1/callback`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ event: 'installing' }),
    });
    expect(await sent.json()).toEqual({ applied: true });
    await startWorker();

    const resumed = await waitFor(() => node(name), (n) => n.deploy?.phases.some((p: { phase: string }) => p.phase === 'installer_started'), {
      what: 'the resumed install to take the callback',
      timeoutMs: 120_000,
      intervalMs: 200,
    });
    expect(resumed.deploy).toMatchObject({ status: 'running', power_cycles: 1 });
    expect(resumed.deploy.phases.filter((p: { phase: string }) => p.phase === 'power_cycled')).toHaveLength(1);
    await api().request('PUT', `/api/v1/nodes/${name}/states/provision`, { json: { target: 'abort' } });
    await waitFor(() => node(name), (n) => n.state === 'deploy failed', { what: 'the abort', timeoutMs: 120_000 });
  });
});
