/**
 * The annealer survives its worker: the API in-process, the worker a process of its own that the test
 * kills with SIGKILL while script roles run on the nodes, then starts again.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Fleet } from '../src/fleet/simulator';
import { allIn, annealApi } from './support/anneal-api';
import { concurrency, readRuns, runsOf } from './support/anneal-recorder';
import { startActiveFleet } from './support/fleet';
import { startTestService, type TestService } from './support/harness';
import { killHard, runTs, type Proc } from './support/processes';
import { waitFor } from './support/wait-for';

jest.setTimeout(300_000);

let ts: TestService;
let fleet: Fleet;
let worker: Proc | undefined;
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'nl-anneal-restart-'));
const anneal = annealApi(() => ts);

/** A worker process on the test service's database and task queue; resolves once it says it runs. */
async function startWorker(): Promise<Proc> {
  const c = ts.config;
  const proc = runTs('src/main.ts', ['--role', 'worker'], {
    DATA_DIR: c.dataDir,
    DATABASE_URL: c.databaseUrl!,
    TEMPORAL_ADDRESS: ts.service.temporalAddress,
    TASK_QUEUE: c.taskQueue,
    INIT_CHECK_INTERVAL: '500ms',
    INIT_WINDOW: '4s',
  });
  worker = proc;
  // Start-up on a loaded machine (compiling, bundling the workflows) can take a while: wait for its banner.
  const out = await waitFor(
    async () => (proc.child.exitCode !== null ? 'exited' : proc.output()),
    (o) => o === 'exited' || o.includes('is running'),
    { what: 'the worker to start', timeoutMs: 180_000, intervalMs: 200 },
  );
  if (out === 'exited') throw new Error(`worker exited:\n${proc.output()}`);
  return proc;
}

beforeAll(async () => {
  ts = await startTestService({}, { role: 'api' });
  await startWorker();
  fleet = await startActiveFleet(ts, 2, 'kill');
}, 600_000);

afterAll(async () => {
  killHard(worker);
  await fleet?.stop();
  await ts?.stop();
  fs.rmSync(work, { recursive: true, force: true });
});

test('a worker killed while script roles run: a new worker carries the anneal on, and each script runs once per node', async () => {
  const group = fleet.hostnames;
  const d = `kill-${Math.random().toString(36).slice(2, 6)}`;
  const log = path.join(work, 'kill.log');
  const hold = path.join(work, 'kill.hold');
  await anneal.role('kill-r1', { attributes: { log, hold } });
  await anneal.role('kill-r2', { requires: ['kill-r1'], attributes: { log } });
  await anneal.deployment(d);
  await anneal.bind(d, 'kill-r2', group);
  const taskId = await anneal.commit(d);
  await waitFor(async () => runsOf(readRuns(log), 'kill-r1').length, (n) => n === group.length, { what: 'kill-r1 to run on both nodes', timeoutMs: 120_000 });
  expect(await anneal.states(d)).toEqual({ ...allIn('transition', ['kill-r1'], group), ...allIn('todo', ['kill-r2'], group) });

  const killed = worker!;
  killHard(killed);
  await killed.exited;
  await startWorker();
  fs.writeFileSync(hold, '');

  const task = await anneal.settle(taskId, 240_000);

  expect(task).toMatchObject({ status: 'succeeded', progress: { total: 4, active: 4 } });
  expect(await anneal.states(d)).toEqual(allIn('active', ['kill-r1', 'kill-r2'], group));
  const runs = readRuns(log);
  for (const node of group) {
    expect([runsOf(runs, 'kill-r1', node).length, runsOf(runs, 'kill-r2', node).length]).toEqual([1, 1]);
    expect(runsOf(runs, 'kill-r1', node)[0]!.end).toBeLessThanOrEqual(runsOf(runs, 'kill-r2', node)[0]!.start);
  }
  expect(runs.every((r) => r.end !== undefined && !r.failed)).toBe(true);
  expect(concurrency(runs).maxOnOneNode).toBe(1);
});
