import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import knexFactory, { type Knex } from 'knex';
import { MAX_BULK_ACCEPT } from '../src/api/routes/bulk-accept-routes';
import { PROJECT_ROOT } from '../src/config';
import { waitForTask } from './support/fleet';
import { agentsOf, nodeState, startTestService, type TestAgent, type TestService } from './support/harness';
import { nodectl } from './support/nodectl';

/**
 * salt-key -A: POST /api/v1/unmanaged_nodes/accept against the real service and real agents. The
 * service starts without a worker, so a test can change a claim between the request and its work; the
 * worker is added by the first test that needs the work done.
 */
let ts: TestService;
let db: Knex | undefined;
let workerAdded = false;
const agents = agentsOf(() => ts);
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'nl-bulk-accept-'));
/** nodectl processes a test started itself; any still running at the end (a failed test) is stopped. */
const children: ChildProcess[] = [];

beforeAll(async () => {
  ts = await startTestService({}, { role: 'api' });
  // Direct writes stand in for a claim changing between the request and its work.
  if (ts.config.databaseUrl) db = knexFactory({ client: 'pg', connection: ts.config.databaseUrl, pool: { min: 0, max: 1 } });
}, 120_000);
afterAll(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill();
  await agents.stopAll();
  await db?.destroy();
  await ts?.stop();
  fs.rmSync(scratch, { recursive: true, force: true });
});

async function withWorker(): Promise<void> {
  if (workerAdded) return;
  await ts.addWorker();
  workerAdded = true;
}

const entry = (a: TestAgent) => ({ hostname: a.hostname, fingerprint: a.fingerprint });
const bulkAccept = (nodes: unknown) => ts.api.post('/api/v1/unmanaged_nodes/accept', nodes === undefined ? undefined : { nodes });
const fakeFingerprint = (c: string) => `SHA256:${c.repeat(43)}`;

async function statesOf(hosts: TestAgent[]): Promise<Record<string, string | undefined>> {
  const states: Record<string, string | undefined> = {};
  for (const h of hosts) states[h.hostname] = await nodeState(ts, h.hostname);
  return states;
}
const all = (hosts: TestAgent[], state: string) => Object.fromEntries(hosts.map((h) => [h.hostname, state]));

describe('refused as a whole', () => {
  let a: TestAgent;
  let b: TestAgent;

  beforeAll(async () => {
    a = await agents.start('refused-a');
    b = await agents.start('refused-b');
  }, 120_000);

  test.each([
    ['no body', undefined, 'body'],
    ['an empty list', [], 'nodes'],
    ['a malformed fingerprint', [{ hostname: 'x.test', fingerprint: 'md5:00' }], 'nodes.0.fingerprint'],
    ['a malformed host name', [{ hostname: 'not a host', fingerprint: fakeFingerprint('A') }], 'nodes.0.hostname'],
    ['an unknown field', [{ hostname: 'x.test', fingerprint: fakeFingerprint('A'), force: true }], 'nodes.0'],
  ])('%s: 400 naming the field', async (_what, nodes, field) => {
    const res = await bulkAccept(nodes);

    expect(res.status).toBe(400);
    expect(res.body.error.fields.map((f: { field: string }) => f.field)).toContain(field);
  });

  test('a host named twice: 400 naming it, and nothing accepted', async () => {
    const res = await bulkAccept([entry(a), entry(b), entry(a)]);

    expect(res.status).toBe(400);
    expect(res.body.error.fields).toEqual([{ field: 'nodes', problem: expect.stringContaining(`names ${a.hostname} more than once`) }]);
    expect(await statesOf([a, b])).toEqual(all([a, b], 'unmanaged'));
  });

  test(`more than ${MAX_BULK_ACCEPT} entries: 400 naming the limit`, async () => {
    const nodes = Array.from({ length: MAX_BULK_ACCEPT + 1 }, (_, i) => ({ hostname: `n${i}.test`, fingerprint: fakeFingerprint('A') }));

    const res = await bulkAccept(nodes);

    expect(res.status).toBe(400);
    expect(res.body.error.fields).toEqual([{ field: 'nodes', problem: expect.stringContaining('at most 10,000 nodes') }]);
  });

  test('a wrong fingerprint is named with the key that does claim the host, and nothing is accepted', async () => {
    const wrong = fakeFingerprint('B');

    const res = await bulkAccept([entry(a), { hostname: b.hostname, fingerprint: wrong }]);

    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe('request_refused');
    expect(res.body.error.offenders).toEqual([
      expect.objectContaining({ node: b.hostname, problem: expect.stringContaining(`no pending claim has fingerprint ${wrong}`), fingerprints: [b.fingerprint] }),
    ]);
    expect(await statesOf([a, b])).toEqual(all([a, b], 'unmanaged'));
  });

  test('every offender is named at once: unknown hosts make it a 404', async () => {
    const res = await bulkAccept([entry(a), { hostname: 'nobody.test', fingerprint: fakeFingerprint('C') }, { hostname: b.hostname, fingerprint: a.fingerprint }]);

    expect(res.status).toBe(404);
    expect(res.body.error.offenders.map((o: { node: string; problem: string }) => [o.node, o.problem])).toEqual([
      ['nobody.test', 'unknown node'],
      [b.hostname, expect.stringContaining(`it is claimed by ${b.fingerprint}`)],
    ]);
    expect(await statesOf([a, b])).toEqual(all([a, b], 'unmanaged'));
  });
});

describe('a claim that changes between the request and its work', () => {
  test('fails its own row and takes no key; the others are accepted, and a commission queued behind their accept runs; a second request for the same hosts is refused', async () => {
    if (!db) return; // needs a direct write to the service's PostgreSQL database
    expect(workerAdded).toBe(false); // the request must wait for its work, with no worker running yet
    const [kept, withdrawn] = [await agents.start('race-kept'), await agents.start('race-withdrawn')];

    const queued = await bulkAccept([entry(kept), entry(withdrawn)]);
    expect(queued.status).toBe(202);
    const again = await bulkAccept([entry(kept)]);
    expect(again.status).toBe(409);
    expect(again.body.error.offenders).toEqual([expect.objectContaining({ node: kept.hostname, problem: `is being accepted already, by task ${queued.body.task_id}` })]);
    await db('node_claims').where({ hostname: withdrawn.hostname, fingerprint: withdrawn.fingerprint }).update({ status: 'rejected' });
    // Queued behind the accept, while the node has no workflow yet to be woken: it runs once the node is active.
    const commission = await ts.api.post('/api/v1/commission/nodes', { nodes: [kept.hostname] });
    expect(commission.status).toBe(202);
    await withWorker();

    const task = (await waitForTask(ts, queued.body.task_id, 180_000)).body;

    expect(task).toMatchObject({ kind: 'accept', status: 'failed', progress: { total: 2, succeeded: 1, failed: 1 } });
    const rows = Object.fromEntries(task.nodes.map((n: { hostname: string }) => [n.hostname, n]));
    expect(rows[kept.hostname]).toMatchObject({ status: 'succeeded', error: null });
    expect(rows[withdrawn.hostname]).toMatchObject({ status: 'failed', error: `not accepted: the claim of ${withdrawn.fingerprint} was rejected meanwhile` });
    expect((await waitForTask(ts, commission.body.task_id, 180_000)).body).toMatchObject({ status: 'succeeded', progress: { succeeded: 1 } });
    expect(await statesOf([kept, withdrawn])).toEqual({ [kept.hostname]: 'commissioned', [withdrawn.hostname]: 'unmanaged' });
    // Its key is refused now: its agent has nothing more to say to this test.
    await withdrawn.stop();
  }, 240_000);
});

describe('accepted', () => {
  beforeAll(withWorker, 60_000);

  test('several announced nodes become active, with one task and a row per node', async () => {
    const hosts: TestAgent[] = [];
    for (let i = 0; i < 4; i++) hosts.push(await agents.start(`bulk-${i}`));

    const res = await bulkAccept(hosts.map(entry));

    expect(res.status).toBe(202);
    expect(res.body).toEqual({ task_id: expect.any(String), kind: 'accept', nodes: 4 });
    expect(res.headers.get('location')).toBe(`/api/v1/tasks/${res.body.task_id}`);
    const task = (await waitForTask(ts, res.body.task_id, 180_000)).body;
    expect(task).toMatchObject({ kind: 'accept', hostname: null, status: 'succeeded', progress: { total: 4, succeeded: 4, failed: 0, queued: 0, running: 0 } });
    expect(task.nodes.map((n: { hostname: string }) => n.hostname).sort()).toEqual(hosts.map((h) => h.hostname).sort());
    for (const row of task.nodes) {
      const host = hosts.find((h) => h.hostname === row.hostname)!;
      expect(row).toMatchObject({ kind: 'accept', status: 'succeeded', error: null, result: { fingerprint: host.fingerprint, accept_task_id: expect.any(String) } });
      // The row followed the node's own accept task, which ends when the node is active.
      expect((await ts.api.get(`/api/v1/tasks/${row.result.accept_task_id}`)).body).toMatchObject({ kind: 'accept', hostname: host.hostname, status: 'succeeded' });
    }
    expect(await statesOf(hosts)).toEqual(all(hosts, 'active'));
  }, 240_000);

  test('nodectl nodes accept --from-file drives it, with a progress bar and a per-node table', async () => {
    const [a, b] = [await agents.start('cli-a'), await agents.start('cli-b')];
    const file = path.join(scratch, 'accept.txt');
    fs.writeFileSync(file, `# hosts to accept\n${a.hostname} ${a.fingerprint}\n\n   ${b.hostname}\t${b.fingerprint}   # the second one\n`);

    const run = await nodectl(ts, ['nodes', 'accept', '--from-file', file]);

    expect(run.code).toBe(0);
    expect(run.stderr).toMatch(/\[#{30}\] 2\/2 done/);
    for (const h of [a, b]) expect(run.stdout).toMatch(new RegExp(`${h.hostname}\\s+active`));
    expect(run.stdout).toMatch(/accept succeeded: 2 active, 0 failed \(task [0-9a-f-]{36}\)/);
    expect(await statesOf([a, b])).toEqual(all([a, b], 'active'));
  }, 240_000);

  test('nodectl refuses a file with bad lines, naming each by its number, and sends nothing', async () => {
    const good = await agents.start('cli-good');
    const file = path.join(scratch, 'bad.txt');
    fs.writeFileSync(file, `${good.hostname} ${good.fingerprint}\n# fine\nlonely-host.test\nbad_host! ${good.fingerprint}\n${good.hostname} ${good.fingerprint}\n`);

    const run = await nodectl(ts, ['nodes', 'accept', '--from-file', file]);

    expect(run.code).toBe(2);
    expect(run.stderr).toContain(`${file}:3: expected "hostname fingerprint", got 1 field(s)`);
    expect(run.stderr).toContain(`${file}:4: "bad_host!" is not a valid host name`);
    expect(run.stderr).toContain(`${file}:5: ${good.hostname} is named already on line 1`);
    expect(await nodeState(ts, good.hostname)).toBe('unmanaged');
  }, 120_000);

  test('nodectl reads the list from standard input with --from-file -', async () => {
    const host = await agents.start('cli-stdin');
    const child = spawn(path.join(PROJECT_ROOT, 'bin', 'nodectl'), [`--server=${ts.service.apiUrl!}`, `--token=${ts.service.apiToken}`, 'nodes', 'accept', '--from-file', '-'], {
      env: { ...process.env, NODE_OPTIONS: '' },
    });
    children.push(child);
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stdin.end(`# from a pipe\n${host.hostname} ${host.fingerprint}\n`);

    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));

    expect(code).toBe(0);
    expect(stdout).toMatch(/accept succeeded: 1 active, 0 failed/);
    expect(await nodeState(ts, host.hostname)).toBe('active');
  }, 240_000);

  test('nodectl reports a refused request with every offender and exits 1', async () => {
    const host = await agents.start('cli-refused');
    const file = path.join(scratch, 'wrong.txt');
    fs.writeFileSync(file, `${host.hostname} ${fakeFingerprint('D')}\n`);

    const run = await nodectl(ts, ['nodes', 'accept', '--from-file', file]);

    expect(run.code).toBe(1);
    expect(run.stderr).toContain('409 request_refused');
    expect(run.stderr).toContain(`${host.hostname}: no pending claim has fingerprint ${fakeFingerprint('D')}; it is claimed by ${host.fingerprint}`);
    expect(await nodeState(ts, host.hostname)).toBe('unmanaged');
  }, 120_000);
});
