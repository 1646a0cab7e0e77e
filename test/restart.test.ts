import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { HttpClient } from './support/http-client';
import { freePort, nextLoopbackAddress } from './support/ports';
import { isRunning, runTs, userStartEnv, type Proc } from './support/processes';
import { waitFor } from './support/wait-for';

/**
 * `npm start` as a user runs it (embedded PGlite, the dev server as a child on its SQLite file), killed
 * with SIGKILL while nodes initialize, then started again.
 */
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'nl-restart-'));
let env: Record<string, string>;
let service: Proc | undefined;
const agents = new Map<string, { args: string[]; proc?: Proc }>();

async function startService(): Promise<HttpClient> {
  service = runTs('src/main.ts', [], env);
  const anonymous = new HttpClient(`http://127.0.0.1:${env.PORT}`);
  await waitFor(
    async () => (service!.child.exitCode !== null ? 'exited' : (await anonymous.get('/healthz').catch(() => ({ status: 0 }))).status),
    (s) => s === 200 || s === 'exited',
    { what: 'the service to be healthy', timeoutMs: 180_000, intervalMs: 250 },
  );
  if (service.child.exitCode !== null) throw new Error(`service exited:\n${service.output()}`);
  return anonymous.withToken(fs.readFileSync(path.join(dataDir, 'api-token'), 'utf8').trim());
}

async function startAgent(hostname: string): Promise<void> {
  const entry = agents.get(hostname)!;
  entry.proc = runTs('src/agent/cli.ts', entry.args, {});
}

async function stopAgent(hostname: string): Promise<void> {
  const entry = agents.get(hostname)!;
  entry.proc?.child.kill('SIGTERM');
  await entry.proc?.exited;
  entry.proc = undefined;
}

const devServerPid = () => Number(fs.readFileSync(path.join(dataDir, 'temporal-dev-server.pid'), 'utf8'));

beforeAll(async () => {
  // The window runs from the accept and must outlast a kill and a cold restart on a loaded machine (VMs
  // of the OS install tests may be emulated beside this test): the three nodes come back within it.
  env = { ...(await userStartEnv(dataDir)), INIT_CHECK_INTERVAL: '500ms', INIT_WINDOW: '75s', AGENT_REQUEST_TIMEOUT: '2s' };
  for (const name of ['r1.restart.test', 'r2.restart.test', 'r3.restart.test', 'gone.restart.test']) {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'nl-ragent-'));
    agents.set(name, {
      args: [
        '--server', `http://127.0.0.1:${env.PORT}`,
        '--hostname', name,
        '--listen', `${nextLoopbackAddress()}:${await freePort()}`,
        '--state-dir', path.join(root, 'state'),
        '--sandbox', path.join(root, 'sandbox'),
        '--announce-interval', '300ms',
      ],
    });
  }
});

afterAll(async () => {
  await Promise.all([...agents.keys()].map(stopAgent));
  service?.child.kill('SIGKILL');
  const pidFile = path.join(dataDir, 'temporal-dev-server.pid');
  if (fs.existsSync(pidFile) && isRunning(devServerPid())) process.kill(devServerPid(), 'SIGKILL');
  fs.rmSync(dataDir, { recursive: true, force: true });
});

test('after kill -9 during initialization, npm start resumes every node where it would have got', async () => {
  let api = await startService();
  for (const name of agents.keys()) await startAgent(name);
  await waitFor(() => api.get('/api/v1/unmanaged_nodes'), (r) => r.body.length === agents.size, { what: 'all agents to announce' });
  const fingerprints = new Map<string, string>((await api.get('/api/v1/unmanaged_nodes')).body.map((n: any) => [n.hostname, n.fingerprint]));
  // The nodes go down, are accepted, and sit in their initialization window.
  for (const name of agents.keys()) await stopAgent(name);
  for (const name of agents.keys()) {
    const res = await api.post(`/api/v1/unmanaged_nodes/${name}/accept`, { hostname: name, fingerprint: fingerprints.get(name) });
    expect(res.status).toBe(202);
  }
  const firstDevServer = devServerPid();

  service!.child.kill('SIGKILL');
  await service!.exited;
  // Its dev server goes with it, however it died: nothing is left for the next start to stop.
  await waitFor(async () => isRunning(firstDevServer), (running) => !running, {
    what: "the killed service's dev server to exit",
    timeoutMs: 60_000,
    intervalMs: 200,
  });

  api = await startService();
  expect(devServerPid()).not.toBe(firstDevServer);
  // Every accept answered 202 survives the kill, applied before it or (queued in Temporal) after it.
  const listed = await waitFor(
    () => api.get('/api/v1/nodes'),
    (r) => r.body.length === 4 && r.body.every((n: any) => n.state !== 'unmanaged'),
    { what: 'the four accepts to be applied', timeoutMs: 120_000 },
  );
  expect(listed.body.map((n: any) => n.state)).toEqual(['initializing', 'initializing', 'initializing', 'initializing']);

  // Three nodes come back within their window; the fourth stays away.
  for (const name of ['r1.restart.test', 'r2.restart.test', 'r3.restart.test']) await startAgent(name);
  const settled = await waitFor(
    () => api.get('/api/v1/nodes'),
    (r) => r.body.every((n: any) => n.state === 'active' || n.state === 'failed'),
    { what: 'every node to settle', timeoutMs: 180_000, intervalMs: 250 },
  );
  expect(Object.fromEntries(settled.body.map((n: any) => [n.hostname, n.state]))).toEqual({
    'gone.restart.test': 'failed',
    'r1.restart.test': 'active',
    'r2.restart.test': 'active',
    'r3.restart.test': 'active',
  });

  // A clean stop takes the dev server down with the service.
  const secondDevServer = devServerPid();
  service!.child.kill('SIGTERM');
  expect(await service!.exited).toBe(0);
  expect(isRunning(secondDevServer)).toBe(false);
}, 600_000);
