import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { HttpClient } from './support/http-client';
import { isRunning, killHard, runStartChain, runTs, userStartEnv, type Proc } from './support/processes';
import { waitFor } from './support/wait-for';

/**
 * `npm start` killed the hard way: the dev server it started must go with it, and a start on a
 * DATA_DIR whose service still runs must refuse instead of breaking that service.
 */
jest.setTimeout(240_000);

const started: Proc[] = [];
const devServers = new Set<number>();
const dataDirs: string[] = [];

afterEach(async () => {
  for (const proc of started) killHard(proc);
  await Promise.all(started.map((p) => p.exited));
  started.length = 0;
  for (const dir of dataDirs) {
    const pidFile = path.join(dir, 'temporal-dev-server.pid');
    if (fs.existsSync(pidFile)) devServers.add(Number(fs.readFileSync(pidFile, 'utf8')));
  }
  for (const pid of devServers) {
    const cmdline = fs.existsSync(`/proc/${pid}/cmdline`) ? fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8') : '';
    if (isRunning(pid) && cmdline.includes('start-dev')) process.kill(pid, 'SIGKILL');
  }
  devServers.clear();
  for (const dir of dataDirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

async function serviceEnv(): Promise<Record<string, string>> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'nl-orphans-'));
  dataDirs.push(dataDir);
  return { ...(await userStartEnv(dataDir)), API_TOKEN: '' };
}

const anonymous = (env: Record<string, string>) => new HttpClient(`http://127.0.0.1:${env.PORT}`);
const healthz = async (env: Record<string, string>) => (await anonymous(env).get('/healthz').catch(() => ({ status: 0 }))).status;

function launch(proc: Proc): Proc {
  started.push(proc);
  return proc;
}

/** Waits for the API to answer 200 on /healthz and for the banner to be out. */
async function healthy(proc: Proc, env: Record<string, string>): Promise<Proc> {
  await waitFor(
    async () => (proc.child.exitCode !== null || proc.child.signalCode !== null ? 'exited' : proc.output().includes('is running') && (await healthz(env))),
    (s) => s === 200 || s === 'exited',
    { what: 'the service to be healthy', timeoutMs: 120_000, intervalMs: 250 },
  );
  if (proc.child.exitCode !== null || proc.child.signalCode !== null) throw new Error(`the service exited:\n${proc.output()}`);
  return proc;
}

function devServerPid(env: Record<string, string>): number {
  const pid = Number(fs.readFileSync(path.join(env.DATA_DIR!, 'temporal-dev-server.pid'), 'utf8'));
  devServers.add(pid);
  return pid;
}

const gone = (pid: number) =>
  waitFor(async () => isRunning(pid), (running) => !running, { what: `the dev server (pid ${pid}) to exit`, timeoutMs: 60_000, intervalMs: 200 });

test('kill -9 of the service process: its dev server exits on its own', async () => {
  const env = await serviceEnv();
  const service = await healthy(launch(runTs('src/main.ts', [], env)), env);
  const devServer = devServerPid(env);

  service.child.kill('SIGKILL');
  await service.exited;

  await gone(devServer);
});

test('kill -9 of the whole process group of an npm start chain leaves no dev server', async () => {
  const env = await serviceEnv();
  const chain = await healthy(launch(runStartChain([], env)), env);
  const devServer = devServerPid(env);

  process.kill(-chain.child.pid!, 'SIGKILL');
  await chain.exited;

  await gone(devServer);
});

test('a second start on a DATA_DIR in use refuses and leaves the first running; once the first is killed, a start succeeds', async () => {
  const env = await serviceEnv();
  const first = await healthy(launch(runTs('src/main.ts', [], env)), env);
  const devServer = devServerPid(env);

  const second = launch(runTs('src/main.ts', [], env));
  expect(await second.exited).not.toBe(0);
  expect(second.output()).toContain(
    `a node-lifecycle service is already running on DATA_DIR ${env.DATA_DIR} (pid ${first.child.pid}, API http://127.0.0.1:${env.PORT}); stop it first`,
  );
  await waitFor(() => healthz(env), (s) => s === 200, { what: 'the first service to stay healthy', timeoutMs: 30_000 });
  expect(devServerPid(env)).toBe(devServer);
  expect(isRunning(devServer)).toBe(true);

  first.child.kill('SIGKILL');
  await first.exited;
  const third = await healthy(launch(runTs('src/main.ts', [], env)), env);
  expect(third.child.exitCode).toBeNull();
});

test('the start-up banner says where the API token is, never the token', async () => {
  const env = await serviceEnv();
  const fromFile = await healthy(launch(runTs('src/main.ts', [], env)), env);
  const tokenFile = path.join(env.DATA_DIR!, 'api-token');
  expect(fromFile.output()).toContain(tokenFile);
  expect(fromFile.output()).not.toContain(fs.readFileSync(tokenFile, 'utf8').trim());
  fromFile.child.kill('SIGTERM');
  expect(await fromFile.exited).toBe(0);

  const secret = `orphans-test-${Math.random().toString(36).slice(2)}`;
  const fromEnv = await healthy(launch(runTs('src/main.ts', [], { ...env, API_TOKEN: secret })), env);
  expect(fromEnv.output()).toContain('API_TOKEN');
  expect(fromEnv.output()).not.toContain(secret);
});
