import dgram from 'node:dgram';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { loadOrCreateIdentity } from '../src/identity/identity';
import type { AddressInfo } from 'node:net';
import { nodeWorkflowId } from '../workflows/definitions';
import { POWER_SYNC_WORKFLOW_ID } from '../workflows/power-sync';
import { startBmc, type Bmc } from './support/bmc';
import { waitForTask } from './support/fleet';
import { HttpClient, type HttpResponse } from './support/http-client';
import { nodeState, startTestAgent, startTestService, type TestService } from './support/harness';
import { nextLoopbackAddress } from './support/ports';
import { nodectl } from './support/nodectl';
import { waitFor } from './support/wait-for';

let ts: TestService;
let bmc: Bmc;
/** BMCs of single tests, stopped at the end. */
const bmcs: Bmc[] = [];
let images: http.Server;
let imageUrl: string;
/** Every response body the API gave in this file, and every line the service logged: scanned for secrets. */
const seen: string[] = [];
const logged: string[] = [];
let api: HttpClient;
let mac = 0x10;

beforeAll(async () => {
  for (const stream of ['log', 'warn', 'error'] as const) {
    const original = console[stream];
    jest.spyOn(console, stream).mockImplementation((...args: unknown[]) => {
      logged.push(args.map(String).join(' '));
      original(...args);
    });
  }
  process.env.LOG_LEVEL = 'debug';
  ts = await startTestService({ POWER_SYNC_INTERVAL: '500ms', POWER_SYNC_NODE_TIMEOUT: '2s' });
  const plain = ts.api;
  // A client that keeps what it was told.
  api = Object.assign(Object.create(plain), {
    request: async (method: string, path: string, options?: object) => {
      const res = await plain.request(method, path, options);
      seen.push(JSON.stringify(res.body) ?? '');
      return res;
    },
  });
  bmc = await startBmc();
  images = http.createServer((req, res) => res.writeHead(req.url === '/blankimage' ? 200 : 404).end());
  const host = nextLoopbackAddress();
  await new Promise<void>((resolve) => images.listen(0, host, resolve));
  imageUrl = `http://${host}:${(images.address() as AddressInfo).port}/blankimage`;
}, 120_000);
afterAll(async () => {
  await bmc?.stop();
  await Promise.all(bmcs.map((b) => b.stop()));
  images?.close();
  await ts?.stop();
  jest.restoreAllMocks();
});

const nextMac = () => `52:54:00:00:00:${(mac++).toString(16).padStart(2, '0')}`;
function enroll(label: string, overrides: Record<string, unknown> = {}) {
  return api.post('/api/v1/nodes', {
    name: ts.hostname(label),
    driver: 'ipmi',
    driver_info: bmc.driverInfo(),
    instance_info: { image_source: imageUrl },
    ports: [{ address: nextMac() }],
    ...overrides,
  });
}
const provision = (name: string, target: string) => api.request('PUT', `/api/v1/nodes/${name}/states/provision`, { json: { target } });
const waitState = (name: string, state: string) => waitFor(() => nodeState(ts, name), (s) => s === state, { what: `${name} to be ${state}` });
function expectError(res: HttpResponse, status: number, field?: string) {
  expect(res.status).toBe(status);
  if (field) expect([res.body.error.field, ...(res.body.error.fields ?? []).map((f: { field: string }) => f.field)]).toContain(field);
}

describe('enrollment', () => {
  test('a node is created in enroll; its password is never shown', async () => {
    const res = await enroll('shown');
    expect(res.status).toBe(201);
    expect(res.headers.get('location')).toBe(`/api/v1/nodes/${ts.hostname('shown')}`);
    expect(res.body).toMatchObject({ state: 'enroll', driver: 'ipmi', driver_info: { ipmi_username: 'admin', ipmi_password: '******' } });
    expect(res.body.ports).toHaveLength(1);
  });

  test('a duplicate name or a MAC in use gets 409; bad fields get 400 naming them; nothing is created', async () => {
    const first = await enroll('unique');
    expectError(await enroll('unique'), 409, 'name');
    expectError(await enroll('other-mac', { ports: first.body.ports.map((address: string) => ({ address })) }), 409, 'ports');
    expectError(await enroll('bad-driver', { driver: 'redfish' }), 400, 'driver');
    expectError(await enroll('no-address', { driver_info: { ipmi_username: 'a', ipmi_password: 'b' } }), 400, 'driver_info.ipmi_address');
    expectError(await enroll('bad-mac', { ports: [{ address: 'nope' }] }), 400, 'ports.0.address');
    for (const label of ['other-mac', 'bad-driver', 'no-address', 'bad-mac']) expect(await nodeState(ts, ts.hostname(label))).toBeUndefined();
  });
});

describe("the seed's adoption, against a real BMC", () => {
  test('enroll -> manage -> adopt -> active without touching the node', async () => {
    const name = ts.hostname('adopted');
    await enroll('adopted');
    expect(await bmc.power()).toBe('power off');

    const managed = await provision(name, 'manage');
    expect(managed.status).toBe(202);
    expect((await waitForTask(ts, managed.body.task_id)).body.status).toBe('succeeded');
    expect(await nodeState(ts, name)).toBe('manageable');
    expect((await api.get(`/api/v1/nodes/${name}`)).body).toMatchObject({ power_state: 'power off', enforced_power_state: 'power off' });

    const adopted = await provision(name, 'adopt');
    expect((await waitForTask(ts, adopted.body.task_id)).body.status).toBe('succeeded');
    const node = (await api.get(`/api/v1/nodes/${name}`)).body;
    expect(node.state).toBe('active');
    expect(node.boot_config).toMatchObject({ boot_option: 'local', image_source: imageUrl });
    expect(node.events.map((e: { to_state: string }) => e.to_state)).toEqual(['enroll', 'verifying', 'manageable', 'adopting', 'active']);
    expect(await bmc.power()).toBe('power off');
  });

  test('a verb not allowed in the current state gets 409 naming the state and the allowed verbs', async () => {
    const name = ts.hostname('too-soon');
    await enroll('too-soon');
    const res = await provision(name, 'adopt');
    expectError(res, 409);
    expect(res.body.error).toMatchObject({ state: 'enroll', allowed: ['manage'] });
    expectError(await provision(name, 'install'), 400, 'target');
  });
});

describe("the seed's example with nodectl", () => {
  test('create, manage --wait, adopt --wait take a node from enroll to active; the BMC is not touched', async () => {
    const name = ts.hostname('cli');
    const info = bmc.driverInfo();
    const created = await nodectl(ts, [
      'nodes', 'create', name, '--driver', 'ipmi',
      ...Object.entries(info).flatMap(([k, v]) => ['--driver-info', `${k}=${v}`]),
      '--instance-info', `image_source=${imageUrl}`,
      '--port', nextMac(),
    ]);
    expect(created.code).toBe(0);
    expect(created.stdout).toMatch(new RegExp(`${name}\\s+enroll\\s+ipmi`));
    seen.push(created.stdout, created.stderr);

    const managed = await nodectl(ts, ['nodes', 'manage', name, '--wait']);
    expect(managed).toMatchObject({ code: 0, stdout: `${name}: manage succeeded; now manageable\n` });
    const adopted = await nodectl(ts, ['nodes', 'adopt', name, '--wait']);
    expect(adopted).toMatchObject({ code: 0, stdout: `${name}: adopt succeeded; now active\n` });
    expect(await bmc.power()).toBe('power off');

    const power = await nodectl(ts, ['nodes', 'power', name]);
    expect(power.stdout).toMatch(/power off\s+power off\s+no\s+bmc/);
    const wrong = await nodectl(ts, ['nodes', 'adopt', name]);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain('409 invalid_state');
    seen.push(managed.stdout, adopted.stdout, power.stdout, wrong.stderr);
    // An active node is not deleted: only enroll, manageable and adopt failed allow it.
    expect((await nodectl(ts, ['nodes', 'delete', name])).code).toBe(1);
  });
});

describe('the agent driver, for nodes without a BMC', () => {
  test('a node enrolled by its agent key is managed and adopted through its agent, and reboots softly', async () => {
    const name = ts.hostname('no-bmc-agent');
    const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'nl-agentdrv-'));
    const fingerprint = (await loadOrCreateIdentity(stateDir, name)).fingerprint;
    const enrolled = await api.post('/api/v1/nodes', {
      name,
      driver: 'agent',
      driver_info: { agent_fingerprint: fingerprint },
      instance_info: { image_source: imageUrl },
    });
    expect(enrolled.status).toBe(201);
    let readyDelivered = false;
    const agent = await startTestAgent(ts, name, { stateDir, onReadySent: () => (readyDelivered = true) });
    try {
      await waitFor(() => api.get(`/api/v1/nodes/${name}`), (r) => r.body.address !== null, { what: 'the agent to announce' });
      // Told it is accepted, the agent sends its ready message: with no workflow yet, it is taken and dropped.
      await waitFor(async () => readyDelivered, Boolean, { what: 'the ready message to be taken' });

      await waitForTask(ts, (await provision(name, 'manage')).body.task_id);
      await waitForTask(ts, (await provision(name, 'adopt')).body.task_id);
      expect(await nodeState(ts, name)).toBe('active');

      const reboot = await api.request('PUT', `/api/v1/nodes/${name}/states/power`, { json: { target: 'rebooting' } });
      expect((await waitForTask(ts, reboot.body.task_id)).body.status).toBe('succeeded');
      const off = await api.request('PUT', `/api/v1/nodes/${name}/states/power`, { json: { target: 'power off' } });
      const refused = (await waitForTask(ts, off.body.task_id)).body;
      expect(refused).toMatchObject({ status: 'failed', error: 'the agent driver cannot power a node off; it has no BMC' });
    } finally {
      await agent.stop();
    }
  });
});

describe('failures', () => {
  test('a wrong password leaves the node in enroll with a clear last_error', async () => {
    const name = ts.hostname('wrong-pw');
    await enroll('wrong-pw', { driver_info: { ...bmc.driverInfo(), ipmi_password: 'not-the-password' } });

    const task = await waitForTask(ts, (await provision(name, 'manage')).body.task_id);

    expect(task.body.status).toBe('failed');
    const node = (await api.get(`/api/v1/nodes/${name}`)).body;
    expect(node.state).toBe('enroll');
    expect(node.last_error).toBe(`power validation: BMC ${bmc.address}:${bmc.port} refused the IPMI session: wrong ipmi_username or ipmi_password`);
  });

  test('an unreachable BMC leaves the node in enroll saying so', async () => {
    const name = ts.hostname('no-bmc');
    await enroll('no-bmc', { driver_info: { ...bmc.driverInfo(), ipmi_port: String(bmc.port + 1) } });
    await waitForTask(ts, (await provision(name, 'manage')).body.task_id);
    expect((await api.get(`/api/v1/nodes/${name}`)).body.last_error).toMatch(/did not answer/);
  });

  test('a missing image_source leads to adopt failed; adopt again after PATCH, or manage, or delete', async () => {
    const name = ts.hostname('no-image');
    await enroll('no-image', { instance_info: {} });
    await waitForTask(ts, (await provision(name, 'manage')).body.task_id);

    await waitForTask(ts, (await provision(name, 'adopt')).body.task_id);
    const failed = (await api.get(`/api/v1/nodes/${name}`)).body;
    expect(failed).toMatchObject({ state: 'adopt failed', last_error: 'adoption: instance_info.image_source is required to adopt a node' });
    expect(failed.allowed_actions).toEqual(['adopt', 'manage']);

    // manage returns it to manageable at once
    const back = await provision(name, 'manage');
    expect((await waitForTask(ts, back.body.task_id)).body.status).toBe('succeeded');
    expect(await nodeState(ts, name)).toBe('manageable');
    await waitForTask(ts, (await provision(name, 'adopt')).body.task_id);
    await waitState(name, 'adopt failed');

    const patched = await api.request('PATCH', `/api/v1/nodes/${name}`, { json: { instance_info: { image_source: imageUrl } } });
    expect(patched.status).toBe(200);
    await waitForTask(ts, (await provision(name, 'adopt')).body.task_id);
    expect(await nodeState(ts, name)).toBe('active');
    expectError(await api.request('PATCH', `/api/v1/nodes/${name}`, { json: { instance_info: { image_source: 'x' } } }), 409);
  });

  test('an unreachable image_source and a netboot node without deploy images are refused at adopt', async () => {
    const missing = ts.hostname('image-404');
    await enroll('image-404', { instance_info: { image_source: imageUrl.replace('blankimage', 'gone') } });
    await waitForTask(ts, (await provision(missing, 'manage')).body.task_id);
    await waitForTask(ts, (await provision(missing, 'adopt')).body.task_id);
    expect((await api.get(`/api/v1/nodes/${missing}`)).body.last_error).toBe(`adoption: instance_info.image_source ${imageUrl.replace('blankimage', 'gone')} answered 404`);

    const netboot = ts.hostname('netboot');
    await enroll('netboot', { instance_info: { image_source: imageUrl, boot_option: 'netboot' } });
    await waitForTask(ts, (await provision(netboot, 'manage')).body.task_id);
    await waitForTask(ts, (await provision(netboot, 'adopt')).body.task_id);
    expect((await api.get(`/api/v1/nodes/${netboot}`)).body.last_error).toBe(
      'adoption: a node that boots from the network needs driver_info.deploy_kernel and driver_info.deploy_ramdisk',
    );

    const removed = await api.request('DELETE', `/api/v1/nodes/${netboot}`);
    expect(removed.status).toBe(204);
    expectError(await api.get(`/api/v1/nodes/${netboot}`), 404);
    expectError(await api.request('DELETE', `/api/v1/nodes/${ts.hostname('adopted')}`), 409);
  });
});

describe('power', () => {
  /** A node of its own, adopted, with a BMC of its own: power tests never share a BMC or depend on each other. */
  async function adoptedNode(label: string): Promise<{ name: string; bmc: Bmc }> {
    const own = await startBmc();
    bmcs.push(own);
    const name = ts.hostname(label);
    expect((await enroll(label, { driver_info: own.driverInfo() })).status).toBe(201);
    expect((await waitForTask(ts, (await provision(name, 'manage')).body.task_id)).body.status).toBe('succeeded');
    expect((await waitForTask(ts, (await provision(name, 'adopt')).body.task_id)).body.status).toBe('succeeded');
    return { name, bmc: own };
  }
  const events = async (type: string, name: string) => (await api.get(`/api/v1/events?type=${type}&node=${name}`)).body as unknown[];
  const setPower = (name: string, target: string) => api.request('PUT', `/api/v1/nodes/${name}/states/power`, { json: { target } });

  /** Sweeps one run of the power sync has finished: its completed activities. */
  async function sweepsIn(runId: string): Promise<number> {
    const history = await ts.temporal.workflow.getHandle(`${POWER_SYNC_WORKFLOW_ID}:${ts.config.taskQueue}`, runId).fetchHistory();
    return (history.events ?? []).filter((e) => e.activityTaskCompletedEventAttributes).length;
  }
  /** Where the power sync is now. It continues as new every few hundred sweeps, so a mark names its run. */
  async function sweepMark(): Promise<{ runId: string; sweeps: number }> {
    const { runId } = await ts.temporal.workflow.getHandle(`${POWER_SYNC_WORKFLOW_ID}:${ts.config.taskQueue}`).describe();
    return { runId, sweeps: await sweepsIn(runId) };
  }
  async function afterTwoMoreSweeps(): Promise<void> {
    const mark = await sweepMark();
    const since = async () => {
      const now = await sweepMark();
      return now.runId === mark.runId ? now.sweeps - mark.sweeps : (await sweepsIn(mark.runId)) - mark.sweeps + now.sweeps;
    };
    await waitFor(since, (n) => n >= 2, { what: 'two more power sync sweeps', timeoutMs: 60_000, intervalMs: 200 });
  }

  test('drift on the BMC is corrected by the sync and recorded as an event', async () => {
    const { name, bmc: own } = await adoptedNode('drift');
    expect(await own.power()).toBe('power off');

    await own.setPowerBehindTheBack('on');

    await waitFor(() => events('power_corrected', name), (e) => e.length === 1, { what: 'the correction', timeoutMs: 60_000 });
    expect(await own.power()).toBe('power off');
    expect((await api.get(`/api/v1/nodes/${name}`)).body).toMatchObject({ power_state: 'power off', enforced_power_state: 'power off', power_fault: false });
  });

  test('a change through the API becomes the enforced state, and no sweep ever undoes it', async () => {
    const { name, bmc: own } = await adoptedNode('operator-power');
    // Each change races the sweeps that read the BMC before it landed; none of them may switch it back.
    for (const target of ['power on', 'power off', 'power on'] as const) {
      const res = await setPower(name, target);
      expect(res.status).toBe(202);
      expect((await waitForTask(ts, res.body.task_id)).body.status).toBe('succeeded');
      await afterTwoMoreSweeps();
      expect(await own.power()).toBe(target);
      const power = (await api.get(`/api/v1/nodes/${name}/states/power`)).body;
      expect(power).toMatchObject({ power_state: target, enforced_power_state: target, source: 'bmc', power_fault: false });
    }
    expect(await events('power_corrected', name)).toEqual([]);
    expectError(await setPower(name, 'on'), 400, 'target');
  });

  test('three failed syncs raise a power fault, which clears itself when the BMC answers again', async () => {
    const { name, bmc: own } = await adoptedNode('fault');
    await own.stop();
    const faulted = await waitFor(() => api.get(`/api/v1/nodes/${name}`), (r) => r.body.power_fault === true, { what: 'the power fault', timeoutMs: 90_000 });
    expect(faulted.body.last_error).toMatch(/^power sync: /);
    expect(await events('power_fault', name)).toHaveLength(1);

    await own.start();
    await waitFor(() => api.get(`/api/v1/nodes/${name}`), (r) => r.body.power_fault === false, { what: 'the fault to clear', timeoutMs: 90_000 });
    // The sweep clears the node's fault, then records the event: wait for the record, it is not the same write.
    await waitFor(() => events('power_fault_cleared', name), (e) => e.length > 0, { what: 'the power_fault_cleared event', timeoutMs: 60_000 });
    expect(await events('power_fault_cleared', name)).toHaveLength(1);
    expect((await api.get(`/api/v1/nodes/${name}`)).body.last_error).toBeNull();
  }, 300_000);

  test('a BMC that never answers costs its own node a timeout; the others are still corrected', async () => {
    const silent = await adoptedNode('silent-bmc');
    const healthy = await adoptedNode('healthy-bmc');
    // The silent node's BMC is replaced by one that swallows every packet (a hung BMC, not a refused port).
    await silent.bmc.stop();
    const blackHole = dgram.createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      blackHole.once('error', reject);
      blackHole.bind(silent.bmc.port, silent.bmc.address, resolve);
    });
    try {
      await healthy.bmc.setPowerBehindTheBack('on');
      await waitFor(() => events('power_corrected', healthy.name), (e) => e.length === 1, { what: 'the healthy node to be corrected', timeoutMs: 60_000 });
      const stuck = await waitFor(() => api.get(`/api/v1/nodes/${silent.name}`), (r) => r.body.power_fault === true, { what: 'the silent BMC to fault', timeoutMs: 90_000 });
      expect(stuck.body.last_error).toBe(`power sync: BMC did not answer within ${ts.config.powerSyncNodeTimeoutMs} ms`);
    } finally {
      blackHole.close();
    }
    // Two adoptions and two sweeps' worth of waiting: more than the default when emulated VMs share the machine.
  }, 300_000);
});

test('no password appears in any response, log line or workflow history', async () => {
  // A node of its own goes through manage and adopt, so this scan does not depend on other tests.
  const name = ts.hostname('secret-scan');
  await enroll('secret-scan');
  await waitForTask(ts, (await provision(name, 'manage')).body.task_id);
  await waitForTask(ts, (await provision(name, 'adopt')).body.task_id);
  await api.get(`/api/v1/nodes/${name}`);
  await api.get(`/api/v1/nodes/${name}/states/power`);
  // Payload data is bytes (base64 in this form): decode it, or a plain-text scan could never match.
  const asText = (history: unknown) =>
    JSON.stringify(history, (key, value) => {
      if (value instanceof Uint8Array) return Buffer.from(value).toString('utf8');
      if (key === 'data' && typeof value === 'string') return Buffer.from(value, 'base64').toString('utf8');
      return value;
    });
  const history = asText(await ts.temporal.workflow.getHandle(nodeWorkflowId(name)).fetchHistory());
  // The decoding works: a key that exists only inside payloads (the workflow's settings) is found.
  expect(history.includes('initCheckIntervalMs')).toBe(true);
  expect(seen.length).toBeGreaterThan(4);
  expect(logged.length).toBeGreaterThan(2);
  const passwords = [bmc, ...bmcs].map((b) => b.password);
  const leaks = [...seen, ...logged, history].filter((text) => passwords.some((p) => text.includes(p)));
  expect(leaks).toEqual([]);
  // The scan would see it: the password is in the BMC's own config, a string this test knows.
  expect(JSON.stringify(bmc.driverInfo())).toContain(bmc.password);
});
