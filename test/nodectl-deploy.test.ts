import { createHash } from 'node:crypto';
import fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import express from 'express';
import {
  DeployView,
  exitCodeOf,
  summaryTable,
  watchDeploy,
  type DeployStatus,
  type NodeProgress,
  type NodeSnapshot,
  type TaskSnapshot,
} from '../src/cli/deploy-watch';
import type { TestService } from './support/harness';
import { startImagesApp, type ImagesApp } from './support/images-app';
import { nodectl as runNodectl } from './support/nodectl';

const T0 = Date.parse('2026-01-01T10:00:00Z');
const at = (seconds: number) => new Date(T0 + seconds * 1000).toISOString();

/** A deploy as the node JSON carries it; override any field. */
function makeDeploy(overrides: Partial<DeployStatus> = {}): DeployStatus {
  return { task_id: 'task-new', image: 'ubuntu', status: 'running', phase: null, phases: [], error: null, queue_position: null, ...overrides };
}

function makeNode(hostname: string, overrides: Partial<NodeSnapshot> = {}): NodeSnapshot {
  return { hostname, state: 'deploying', last_error: null, deploy: null, ...overrides };
}

function makeProgress(hostname: string, overrides: Partial<NodeProgress> = {}): NodeProgress {
  return { hostname, state: 'deploying', deploy: null, lastError: null, done: false, doneAt: null, note: null, ...overrides };
}

const phases = (...names: string[]) => names.map((phase, i) => ({ phase, at: at(i * 10) }));

/** Answers each node's polls from its script, one step per poll, staying on the last step. */
function scripted(scripts: Record<string, (NodeSnapshot | null | Error)[]>) {
  const polls: Record<string, number> = {};
  return {
    polls,
    async fetchNode(hostname: string): Promise<NodeSnapshot | null> {
      const script = scripts[hostname]!;
      const step = script[Math.min(polls[hostname] ?? 0, script.length - 1)]!;
      polls[hostname] = (polls[hostname] ?? 0) + 1;
      if (step instanceof Error) throw step;
      return step;
    },
  };
}

/** A view writing to an array, on a clock the test moves. */
function capture(tty: boolean, options: { maxRows?: number; columns?: number } = {}) {
  const clock = { now: T0 };
  const writes: string[] = [];
  const view = new DeployView({ tty, write: (t) => writes.push(t), now: () => clock.now, clock: () => 'T', ...options });
  return { view, writes, clock, lines: () => writes.join('').split('\n').filter(Boolean) };
}

describe('watching a deploy (fed snapshots, no server)', () => {
  const old = makeDeploy({ task_id: 'task-old', status: 'succeeded', phase: 'done', phases: phases('queued', 'done') });

  async function watch(scripts: Record<string, (NodeSnapshot | null | Error)[]>, extra: { fetchTask?: () => Promise<TaskSnapshot | null>; baseline?: Map<string, string | null>; toleratedOutageMs?: number } = {}) {
    const source = scripted(scripts);
    const out = capture(false);
    const progress = await watchDeploy({
      hostnames: Object.keys(scripts),
      baseline: extra.baseline ?? new Map(Object.keys(scripts).map((h) => [h, 'task-old'])),
      taskId: 'bulk-task',
      fetchNode: source.fetchNode,
      fetchTask: extra.fetchTask,
      view: out.view,
      sleep: async () => {
        out.clock.now += 1000;
      },
      now: () => out.clock.now,
      toleratedOutageMs: extra.toleratedOutageMs,
    });
    return { progress, polls: source.polls, lines: out.lines() };
  }

  test('an earlier deploy is not taken for this one, and a succeeded deploy waits for the node to be active', async () => {
    const a = 'a.test';
    const { progress, polls, lines } = await watch({
      [a]: [
        makeNode(a, { state: 'active', deploy: old }),
        makeNode(a, { state: 'active', deploy: makeDeploy({ status: 'queued', queue_position: 2, phases: [] }) }),
        makeNode(a, { deploy: makeDeploy({ phase: 'power_on', phases: phases('power_on') }) }),
        makeNode(a, { deploy: makeDeploy({ phase: 'installed', phases: phases('power_on', 'writing_image', 'installed') }) }),
        makeNode(a, { state: 'initializing', deploy: makeDeploy({ status: 'succeeded', phase: 'installed', phases: phases('power_on', 'writing_image', 'installed') }) }),
        makeNode(a, { state: 'initializing', deploy: makeDeploy({ status: 'succeeded', phase: 'installed', phases: phases('power_on', 'writing_image', 'installed') }) }),
        makeNode(a, { state: 'active', deploy: makeDeploy({ status: 'succeeded', phase: 'installed', phases: phases('power_on', 'writing_image', 'installed') }) }),
      ],
    });

    expect(polls[a]).toBe(7);
    expect(progress[0]).toMatchObject({ hostname: a, state: 'active', done: true, deploy: { task_id: 'task-new', status: 'succeeded' } });
    expect(lines).toEqual([
      `T ${a} state active`,
      `T ${a} queued (position 2)`,
      `T ${a} state deploying`,
      `T ${a} phase power_on`,
      // writing_image passed between two polls: a log still shows it.
      `T ${a} phase writing_image`,
      `T ${a} phase installed`,
      `T ${a} state initializing`,
      `T ${a} deploy succeeded`,
      `T ${a} state active`,
    ]);
    expect(exitCodeOf(progress)).toBe(0);
  });

  test('a deploy carrying the request task id is this one even when the baseline had it', async () => {
    const a = 'a.test';
    const done = makeNode(a, { state: 'active', deploy: makeDeploy({ task_id: 'bulk-task', status: 'succeeded', phases: phases('installed') }) });

    const { progress } = await watch({ [a]: [done] }, { baseline: new Map([[a, 'bulk-task']]) });

    expect(progress[0]).toMatchObject({ done: true, state: 'active' });
  });

  test('one node failing makes the exit status 1; its error is in the table', async () => {
    const [a, b] = ['a.test', 'b.test'];
    const { progress, lines } = await watch({
      [a]: [makeNode(a, { state: 'active', deploy: makeDeploy({ status: 'succeeded', phases: phases('installed') }) })],
      [b]: [
        makeNode(b, { deploy: makeDeploy({ phase: 'writing_image', phases: phases('power_on', 'writing_image') }) }),
        makeNode(b, { state: 'deploy failed', last_error: 'deploy failed', deploy: makeDeploy({ status: 'failed', phase: 'writing_image', phases: phases('power_on', 'writing_image'), error: 'sha256 of the written disk differs' }) }),
      ],
    });

    expect(lines).toContain(`T ${b} deploy failed: sha256 of the written disk differs`);
    expect(exitCodeOf(progress)).toBe(1);
    const table = summaryTable(progress, T0).split('\n');
    expect(table[0]).toMatch(/^NODE\s+STATE\s+RESULT\s+DURATION\s+ERROR$/);
    expect(table[1]).toMatch(/^a\.test\s+active\s+succeeded\s+0s\s+-$/);
    expect(table[2]).toMatch(/^b\.test\s+deploy failed\s+failed\s+1s\s+sha256 of the written disk differs$/);
  });

  test('a node the ended task never deployed is done, "not started", with the task\'s reason', async () => {
    const [a, b] = ['a.test', 'b.test'];
    const task: TaskSnapshot = { status: 'failed', nodes: [{ hostname: b, status: 'failed', error: 'image check failed' }] };
    let taskReads = 0;

    const { progress } = await watch(
      {
        [a]: [makeNode(a, { state: 'active', deploy: makeDeploy({ status: 'succeeded' }) })],
        [b]: [makeNode(b, { state: 'manageable', deploy: old })],
      },
      { fetchTask: async () => (++taskReads < 3 ? { status: 'running' } : task) },
    );

    expect(taskReads).toBe(3);
    expect(progress[1]).toMatchObject({ done: true, deploy: null, note: 'not deployed: image check failed' });
    expect(summaryTable(progress, T0)).toMatch(/b\.test\s+manageable\s+not started\s+2s\s+not deployed: image check failed/);
    expect(exitCodeOf(progress)).toBe(1);
  });

  test('a node deleted while watched is done as gone', async () => {
    const { progress } = await watch({ 'a.test': [null] });

    expect(progress[0]).toMatchObject({ state: 'gone', done: true, note: 'the node was deleted' });
    expect(exitCodeOf(progress)).toBe(1);
  });

  test('polls failing for a while are waited out; failing for longer ends the wait with the error', async () => {
    const down = new Error('cannot reach the service');
    const ok = makeNode('a.test', { state: 'active', deploy: makeDeploy({ status: 'succeeded' }) });

    await expect(watch({ 'a.test': [down, down, down, ok] }, { toleratedOutageMs: 5_000 })).resolves.toMatchObject({ progress: [{ done: true }] });
    await expect(watch({ 'a.test': [down] }, { toleratedOutageMs: 5_000 })).rejects.toThrow('cannot reach the service');
  });
});

describe('the terminal view', () => {
  const rows = () => [
    makeProgress('a.test', { deploy: makeDeploy({ status: 'queued', queue_position: 3 }) }),
    makeProgress('b.test', { deploy: makeDeploy({ phase: 'writing_image', phases: [{ phase: 'power_on', at: at(0) }, { phase: 'writing_image', at: at(10) }] }) }),
  ];

  test('one line per node with the phase and how long it has lasted, redrawn in place', async () => {
    const { view, writes, clock } = capture(true);

    view.show(rows());
    clock.now = T0 + 75_000;
    view.show(rows());

    expect(writes[0]).not.toContain('\x1b[3A');
    const second = writes[1]!;
    // Back up over the header and the two node lines, then each line cleared and written again.
    expect(second.startsWith('\x1b[3A')).toBe(true);
    const lines = second.slice('\x1b[3A'.length).split('\n').filter(Boolean);
    expect(lines.every((l) => l.startsWith('\r\x1b[2K'))).toBe(true);
    const text = lines.map((l) => l.slice('\r\x1b[2K'.length));
    expect(text[0]).toMatch(/^NODE\s+STATE\s+PHASE$/);
    expect(text[1]).toMatch(/^a\.test\s+deploying\s+queued \(position 3\)$/);
    expect(text[2]).toMatch(/^b\.test\s+deploying\s+writing_image \(1m05s\)$/);
  });

  test('more nodes than fit: the moving ones are drawn, the rest summed up; lines are cut to the width', async () => {
    const { view, writes } = capture(true, { maxRows: 3, columns: 30 });
    const many = [
      makeProgress('done-1.test', { state: 'active', done: true, deploy: makeDeploy({ status: 'succeeded' }) }),
      ...rows(),
      makeProgress('c.test'),
      makeProgress('d.test', { state: 'active', done: true, deploy: makeDeploy({ status: 'succeeded' }) }),
    ];

    view.show(many);

    const text = writes[0]!.split('\n').filter(Boolean).map((l) => l.replace('\r\x1b[2K', ''));
    expect(text).toHaveLength(4);
    expect(text[1]).toMatch(/^a\.test/);
    expect(text[2]).toMatch(/^b\.test/);
    expect(text[3]).toBe('... and 3 more (2 done)');
    expect(text.every((l) => l.length < 30)).toBe(true);
  });
});

describe('nodectl nodes deploy, rebuild and abort (a scripted API)', () => {
  const [a, b] = ['a.test', 'b.test'];
  let server: import('node:http').Server;
  let url: string;
  const received: { method: string; path: string; body: unknown }[] = [];
  const scripts: Record<string, NodeSnapshot[]> = {};
  const polls: Record<string, number> = {};
  let started = false;

  beforeAll(async () => {
    const api = express();
    api.use(express.json());
    api.use((req, _res, next) => {
      if (req.method !== 'GET') received.push({ method: req.method, path: req.path, body: req.body });
      next();
    });
    api.get('/api/v1/nodes/:name', (req, res) => {
      const script = scripts[req.params.name];
      if (!script) return void res.status(404).json({ error: { code: 'not_found', message: `no node ${req.params.name}` } });
      // Before the request, the node shows its earlier deploy; after it, one step per poll.
      if (!started) return void res.json(makeNode(req.params.name, { state: 'active', deploy: makeDeploy({ task_id: 'old', status: 'succeeded' }) }));
      const n = polls[req.params.name] ?? 0;
      polls[req.params.name] = n + 1;
      res.json(script[Math.min(n, script.length - 1)]);
    });
    api.get('/api/v1/tasks/:id', (_req, res) => void res.json({ status: 'running' }));
    api.post('/api/v1/deploy/nodes', (req, res) => {
      started = true;
      res.status(202).json({ task_id: 'task-new', kind: 'deploy', nodes: req.body.nodes.length });
    });
    api.put('/api/v1/nodes/:name/states/provision', (req, res) => {
      started = true;
      res.status(202).json({ task_id: 'task-new', hostname: req.params.name, state: req.body.target === 'abort' ? 'deploy failed' : 'deploying' });
    });
    server = api.listen(0, '127.0.0.1');
    await new Promise<void>((resolve) => server.once('listening', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  beforeEach(() => {
    started = false;
    received.length = 0;
    for (const k of Object.keys(polls)) delete polls[k];
  });

  const nodectl = (args: string[]) => runNodectl({ service: { apiUrl: url, apiToken: 'token' } } as unknown as TestService, args);

  test('deploy --wait logs each phase, ends with the table, and exits 1 when a node failed', async () => {
    scripts[a] = [
      makeNode(a, { deploy: makeDeploy({ status: 'queued', queue_position: 1 }) }),
      makeNode(a, { deploy: makeDeploy({ phase: 'writing_image', phases: phases('power_on', 'writing_image') }) }),
      makeNode(a, { state: 'initializing', deploy: makeDeploy({ status: 'succeeded', phase: 'installed', phases: phases('power_on', 'writing_image', 'installed') }) }),
      makeNode(a, { state: 'active', deploy: makeDeploy({ status: 'succeeded', phase: 'installed', phases: phases('power_on', 'writing_image', 'installed') }) }),
    ];
    scripts[b] = [
      makeNode(b, { deploy: makeDeploy({ phase: 'power_on', phases: phases('power_on') }) }),
      makeNode(b, { state: 'deploy failed', deploy: makeDeploy({ status: 'failed', phase: 'power_on', phases: phases('power_on'), error: 'no DHCP request within 2m' }) }),
    ];

    const run = await nodectl(['nodes', 'deploy', a, b, '--image', 'ubuntu', '--wait']);

    expect(received).toEqual([{ method: 'POST', path: '/api/v1/deploy/nodes', body: { nodes: [a, b], image: 'ubuntu' } }]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(new RegExp(`\\d\\d:\\d\\d:\\d\\d ${a} queued \\(position 1\\)`));
    expect(run.stderr).toMatch(new RegExp(`\\d\\d:\\d\\d:\\d\\d ${a} phase writing_image`));
    expect(run.stderr).toMatch(new RegExp(`${a} state initializing[\\s\\S]*${a} state active`));
    expect(run.stderr).toContain(`${b} deploy failed: no DHCP request within 2m`);
    expect(run.stdout).toMatch(/NODE\s+STATE\s+RESULT\s+DURATION\s+ERROR/);
    expect(run.stdout).toMatch(new RegExp(`${a}\\s+active\\s+succeeded\\s+\\d+s\\s+-`));
    expect(run.stdout).toMatch(new RegExp(`${b}\\s+deploy failed\\s+failed\\s+\\d+s\\s+no DHCP request within 2m`));
  });

  test('rebuild --wait exits 0 once the node is active again', async () => {
    scripts[a] = [
      makeNode(a, { deploy: makeDeploy({ phase: 'writing_image', phases: phases('writing_image') }) }),
      makeNode(a, { state: 'active', deploy: makeDeploy({ status: 'succeeded', phase: 'installed', phases: phases('writing_image', 'installed') }) }),
    ];

    const run = await nodectl(['nodes', 'rebuild', a, '--image', 'debian', '--wait']);

    expect(received).toEqual([{ method: 'PUT', path: `/api/v1/nodes/${a}/states/provision`, body: { target: 'rebuild', image: 'debian' } }]);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(new RegExp(`${a}\\s+active\\s+succeeded`));
  });

  test('deploy without --wait and abort print the task and exit 0', async () => {
    const deployed = await nodectl(['nodes', 'deploy', a, '--image', 'ubuntu']);
    const aborted = await nodectl(['nodes', 'abort', a]);

    expect(deployed).toMatchObject({ code: 0, stdout: 'deploy of ubuntu to 1 node(s): task task-new\n' });
    expect(aborted).toMatchObject({ code: 0, stdout: `${a}: abort requested (task task-new); now deploy failed\n` });
    expect(received.map((r) => r.body)).toEqual([{ nodes: [a], image: 'ubuntu' }, { target: 'abort' }]);
  });

  test.each([
    ['deploy without --image', ['nodes', 'deploy', 'a.test']],
    ['deploy without a node', ['nodes', 'deploy', '--image', 'ubuntu']],
    ['rebuild of two nodes', ['nodes', 'rebuild', 'a.test', 'b.test', '--image', 'ubuntu']],
    ['abort without a node', ['nodes', 'abort']],
    ['images create without --sha256', ['images', 'create', 'x', '--kernel', '/k', '--initrd', '/i', '--disk', '/d']],
    ['images show without a name', ['images', 'show']],
    ['an unknown images verb', ['images', 'frobnicate']],
  ])('usage mistake, exit 2: %s', async (_label, args) => {
    const run = await nodectl(args);

    expect(run.code).toBe(2);
    expect(received).toEqual([]);
  });
});

describe('nodectl images (a real API and database)', () => {
  let app: ImagesApp;
  let dir: string;
  const disk = Buffer.alloc(200_000, 7);
  const sha = createHash('sha256').update(disk).digest('hex');

  beforeAll(async () => {
    app = await startImagesApp();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nl-nodectl-images-'));
    for (const [file, data] of [['vmlinuz', 'k'], ['initrd', 'i'], ['disk.img', disk]] as const) fs.writeFileSync(path.join(dir, file), data);
  });
  afterAll(async () => {
    await app?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const nodectl = (args: string[]) => runNodectl({ service: { apiUrl: app.url, apiToken: app.token } } as unknown as TestService, args);
  const parts = (overrides: Record<string, string> = {}) =>
    Object.entries({ kernel: path.join(dir, 'vmlinuz'), initrd: path.join(dir, 'initrd'), disk: path.join(dir, 'disk.img'), sha256: sha, ...overrides }).flatMap(([k, v]) => [`--${k}`, v]);

  test('create, list, show and delete', async () => {
    const created = await nodectl(['images', 'create', 'ubuntu-24.04', ...parts()]);
    const listed = await nodectl(['images', 'list']);
    const shown = await nodectl(['images', 'show', 'ubuntu-24.04', '--json']);
    const deleted = await nodectl(['images', 'delete', 'ubuntu-24.04']);
    const after = await nodectl(['images', 'show', 'ubuntu-24.04']);

    expect(created.code).toBe(0);
    expect(created.stdout).toMatch(/^name\s+ubuntu-24\.04$/m);
    expect(created.stdout).toMatch(/^size\s+195\.3 KiB \(200000 bytes\)$/m);
    expect(created.stdout).toContain(sha);
    expect(listed.code).toBe(0);
    expect(listed.stdout).toMatch(/^NAME\s+SIZE\s+SHA256\s+DISK\s+CREATED$/m);
    expect(listed.stdout).toMatch(new RegExp(`^ubuntu-24\\.04\\s+195\\.3 KiB\\s+${sha.slice(0, 16)}\\.\\.\\.\\s+${path.join(dir, 'disk.img')}`, 'm'));
    expect(JSON.parse(shown.stdout)).toMatchObject({ name: 'ubuntu-24.04', sha256: sha, size: 200_000, disk: path.join(dir, 'disk.img') });
    expect(deleted).toMatchObject({ code: 0, stdout: 'image ubuntu-24.04 deleted\n' });
    expect(after.code).toBe(1);
    expect(after.stderr).toContain('404 not_found: no image ubuntu-24.04');
  });

  test('a refused create exits 1 with each problem by field, and registers nothing', async () => {
    const run = await nodectl(['images', 'create', 'broken', ...parts({ kernel: path.join(dir, 'missing'), sha256: '0'.repeat(64) })]);

    expect(run.code).toBe(1);
    expect(run.stderr).toContain('422 image_check_failed');
    expect(run.stderr).toContain(`  kernel: file ${path.join(dir, 'missing')} does not exist`);
    expect(run.stderr).toContain(`  sha256: does not match the disk: expected ${'0'.repeat(64)}, actual ${sha}`);
    expect((await app.api.get('/api/v1/images')).body).toEqual([]);
  });
});
