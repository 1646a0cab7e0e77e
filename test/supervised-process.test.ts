import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startSupervised, type SupervisedProcess } from '../src/cluster/supervised-process';
import { isRunning } from './support/processes';
import { waitFor } from './support/wait-for';

// The cluster engine's Temporal server and web UI run under this supervisor.
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nl-supervised-'));
const started: SupervisedProcess[] = [];
afterAll(async () => {
  await Promise.all(started.map((p) => p.stop()));
  fs.rmSync(dir, { recursive: true, force: true });
});

async function supervise(name: string, script: string, maxRestarts?: number) {
  const proc = await startSupervised({
    name,
    command: 'sh',
    args: ['-c', script, name],
    logFile: path.join(dir, `${name}.log`),
    pidFile: path.join(dir, `${name}.pid`),
    maxRestarts,
  });
  started.push(proc);
  return proc;
}

test('a child killed from outside is started again, and stop ends it for good', async () => {
  const proc = await supervise('sleeper', 'echo started; exec sleep 600');
  const first = proc.pid!;

  process.kill(first, 'SIGKILL');

  const second = await waitFor(async () => proc.pid, (pid) => pid !== first && isRunning(pid!), { what: 'a restart', timeoutMs: 30_000 });
  expect(fs.readFileSync(path.join(dir, 'sleeper.pid'), 'utf8').trim()).toBe(String(second));
  await proc.stop();
  expect(isRunning(second!)).toBe(false);
  expect(fs.existsSync(path.join(dir, 'sleeper.pid'))).toBe(false);
}, 60_000);

test('a child that keeps dying makes the supervisor give up, naming the child and its log', async () => {
  const proc = await supervise('crasher', 'echo boom; exit 3', 2);

  await expect(proc.failed).rejects.toThrow(/^crasher \(pid \d+\) exited \(3\) 3 times within 60 s; giving up, see .*crasher\.log$/);
  expect(fs.readFileSync(path.join(dir, 'crasher.log'), 'utf8')).toBe('boom\nboom\nboom\n');
}, 60_000);
