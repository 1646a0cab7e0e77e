import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { HookRunner } from '../src/agent/hooks';
import { HostOperations } from '../src/agent/operations';

/** The agent side of "a repeated step is harmless": a retried operation id never runs its hook twice. */
describe('hook runs are keyed by operation id', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'nl-hooks-'));
  const sandbox = path.join(root, 'sandbox');
  const hooks = path.join(root, 'hooks');
  const runsFile = path.join(sandbox, 'runs');
  let runner: HookRunner;
  const runs = () => fs.readFileSync(runsFile, 'utf8').trim().split('\n').length;

  beforeAll(() => {
    fs.mkdirSync(sandbox, { recursive: true });
    fs.mkdirSync(hooks, { recursive: true });
    fs.writeFileSync(path.join(hooks, 'commission'), `#!/bin/sh\necho ran >> "${runsFile}"\necho done\n`, { mode: 0o755 });
    runner = new HookRunner('hooks.test', hooks, new HostOperations(sandbox), sandbox);
  });
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

  test('a step retried after its run finished gets the recorded result; a new step runs again', async () => {
    const first = await runner.run('7:commission', 'commission', {});
    const retried = await runner.run('7:commission', 'commission', {});

    expect(retried).toEqual(first);
    expect(first).toMatchObject({ ran: true, exit_code: 0, stdout: 'done\n' });
    expect(runs()).toBe(1);

    await runner.run('8:commission', 'commission', {});
    expect(runs()).toBe(2);
  });
});
