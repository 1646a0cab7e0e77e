import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Fleet } from '../src/fleet/simulator';
import { annealProgressLine, annealSummary, AnnealView, watchAnneal, type AnnealRow, type AnnealTask } from '../src/cli/anneal-watch';
import { CliError } from '../src/cli/client';
import { countsText, renderTree } from '../src/cli/deployment-commands';
import { parseAttrs, parseRoleFile } from '../src/cli/role-commands';
import { readRuns, recordingScript, rolesByNode, writeFile } from './support/deployment-roles';
import { startActiveFleet } from './support/fleet';
import { startTestService, type TestService } from './support/harness';
import { nodectl as runNodectl } from './support/nodectl';

/** An anneal task as GET /api/v1/tasks/{id} shows it; override any field. */
function makeTask(noderoles: AnnealRow[], overrides: Partial<AnnealTask> = {}): AnnealTask {
  const count = (state: string) => noderoles.filter((n) => n.state === state).length;
  return {
    id: 'task-1',
    status: 'running',
    error: null,
    details: { deployment: 'web' },
    progress: { total: noderoles.length, todo: count('todo'), transition: count('transition'), active: count('active'), error: count('error'), blocked: count('blocked') },
    noderoles,
    ...overrides,
  };
}

const row = (id: number, role: string, state: string, error: string | null = null): AnnealRow => ({ id, role, node: 'n1.test', state, error });

describe('parsing the flags and files (no server)', () => {
  test('--attr values are JSON when they parse and plain text otherwise', () => {
    expect(parseAttrs(['port=8080', 'debug=true', 'tags=["a","b"]', 'image=tiny', 'quoted="8080"', 'empty=', 'eq=a=b', 'obj={"x":{"y":1}}', 'nil=null'])).toEqual({
      port: 8080,
      debug: true,
      tags: ['a', 'b'],
      image: 'tiny',
      quoted: '8080',
      empty: '',
      eq: 'a=b',
      obj: { x: { y: 1 } },
      nil: null,
    });
  });

  test('an --attr without = or without a key is a usage error naming it', () => {
    for (const bad of ['novalue', '=x']) {
      expect(() => parseAttrs([bad])).toThrow(CliError);
      expect(() => parseAttrs([bad])).toThrow(`--attr takes key=value (the value JSON or plain text), got "${bad}"`);
    }
    expect(() => parseAttrs(['x'])).toThrow(expect.objectContaining({ exitCode: 2 }));
  });

  test('a role file is JSON or YAML with a name', () => {
    const yaml = 'name: web\nrequires: [base]\nattributes:\n  port: 80\nscript: |\n  #!/bin/sh\n  echo hi\n';
    expect(parseRoleFile(yaml, 'web.yaml')).toEqual({ name: 'web', requires: ['base'], attributes: { port: 80 }, script: '#!/bin/sh\necho hi\n' });
    expect(parseRoleFile('{"name":"db","script":"#!/bin/sh\\n"}', 'db.json')).toEqual({ name: 'db', script: '#!/bin/sh\n' });
    expect(() => parseRoleFile('script: x\n', 'x.yaml')).toThrow('x.yaml names no role');
    expect(() => parseRoleFile('- a\n- b\n', 'x.yaml')).toThrow('must hold one role');
    expect(() => parseRoleFile('name: [unclosed', 'x.yaml')).toThrow('is neither JSON nor YAML');
  });

  test('the tree shows the ancestors, then the subtree with states and node counts', () => {
    const tree = {
      name: 'web',
      state: 'committed',
      nodes: 3,
      children: [
        { name: 'canary', state: 'proposed', nodes: 1, children: [{ name: 'canary-eu', state: 'proposed', nodes: 0, children: [] }] },
        { name: 'blue', state: 'proposed', nodes: 0, children: [] },
      ],
    };
    expect(renderTree(['system', 'prod', 'web'], tree).split('\n')).toEqual([
      'system',
      '`-- prod',
      '    `-- web  committed  3 nodes',
      '        |-- canary  proposed  1 node',
      '        |   `-- canary-eu  proposed  0 nodes',
      '        `-- blue  proposed  0 nodes',
    ]);
    expect(renderTree(['system'], { name: 'system', state: 'committed', nodes: 2, children: [] })).toBe('system  committed  2 nodes');
    expect(countsText({ proposed: 0, todo: 1, transition: 0, active: 3, error: 1, blocked: 0 })).toBe('1 todo, 3 active, 1 error');
    expect(countsText({ proposed: 0, todo: 0, transition: 0, active: 0, error: 0, blocked: 0 })).toBe('none');
  });
});

describe('watching an anneal (fed snapshots, no server)', () => {
  const steps = [
    makeTask([row(1, 'a', 'todo'), row(2, 'b', 'todo')]),
    makeTask([row(1, 'a', 'transition'), row(2, 'b', 'todo')]),
    new Error('connection refused'),
    makeTask([row(1, 'a', 'error', 'role a exited 3'), row(2, 'b', 'blocked')], { status: 'failed', error: 'noderole 1 (a on n1.test) failed' }),
  ];

  async function watch(tty: boolean) {
    const writes: string[] = [];
    const clock = { now: 0 };
    let poll = 0;
    const view = new AnnealView({ tty, write: (t) => writes.push(t), clock: () => 'T', now: () => clock.now });
    const task = await watchAnneal({
      fetchTask: async () => {
        const step = steps[Math.min(poll++, steps.length - 1)]!;
        if (step instanceof Error) throw step;
        return step;
      },
      view,
      sleep: async () => {
        clock.now += 500;
      },
      now: () => clock.now,
    });
    return { task, writes, polls: poll };
  }

  test('on a pipe: a line per noderole state change and per change of the bar; a failed poll is ridden out', async () => {
    const { task, writes, polls } = await watch(false);

    expect(polls).toBe(4);
    expect(task.status).toBe('failed');
    expect(writes.join('').split('\n').filter(Boolean)).toEqual([
      'T noderole 1 a on n1.test: todo',
      'T noderole 2 b on n1.test: todo',
      `[${'.'.repeat(30)}] 0/2 done  active 0  running 0  todo 2  error 0  blocked 0`,
      'T noderole 1 a on n1.test: transition',
      `[${'.'.repeat(30)}] 0/2 done  active 0  running 1  todo 1  error 0  blocked 0`,
      'T noderole 1 a on n1.test: error (role a exited 3)',
      'T noderole 2 b on n1.test: blocked',
      `[${'#'.repeat(30)}] 2/2 done  active 0  running 0  todo 0  error 1  blocked 1`,
    ]);
    expect(annealSummary(task, 'commit of web').split('\n')).toEqual([
      'ID  NODE     ROLE  STATE    ERROR',
      '1   n1.test  a     error    role a exited 3',
      '2   n1.test  b     blocked  -',
      'commit of web failed: 0 active, 1 error, 1 blocked (task task-1)',
      '  noderole 1 (a on n1.test) failed',
    ]);
  });

  test('on a terminal: the table and the bar are redrawn in place', async () => {
    const { writes } = await watch(true);

    const frames = writes.filter((w) => w.includes('ID'));
    expect(frames).toHaveLength(3);
    // Each frame after the first climbs back over the lines drawn before it (the table and the bar).
    expect(frames[1]!.startsWith('\x1b[4A')).toBe(true);
    expect(frames[2]).toContain('error 1  blocked 1');
  });

  test('the bar counts active, error and blocked as done', () => {
    expect(annealProgressLine({ total: 4, todo: 1, transition: 1, active: 1, error: 1, blocked: 0 }, 4)).toBe('[##..] 2/4 done  active 1  running 1  todo 1  error 1  blocked 0');
    expect(annealProgressLine({ total: 0, todo: 0, transition: 0, active: 0, error: 0, blocked: 0 }, 4)).toBe('[####] 0/0 done  active 0  running 0  todo 0  error 0  blocked 0');
  });
});

describe('nodectl deployments, roles and noderoles against the service', () => {
  let ts: TestService;
  let fleet: Fleet;
  let work: string;
  let log: string;
  let script: string;
  let n1: string, n2: string, n3: string, n4: string;

  beforeAll(async () => {
    ts = await startTestService();
    fleet = await startActiveFleet(ts, 4, 'dpl');
    [n1, n2, n3, n4] = fleet.hostnames as [string, string, string, string];
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'nl-deployments-'));
    log = path.join(work, 'runs.jsonl');
    script = writeFile(work, 'record.sh', recordingScript(log));
  }, 300_000);
  afterAll(async () => {
    await fleet?.stop();
    await ts?.stop();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  const nodectl = (...args: string[]) => runNodectl(ts, args);
  /** The id of the one noderole of `role` on `node`. */
  async function noderoleId(node: string, role: string): Promise<string> {
    const listed = await nodectl('noderoles', 'list', '--node', node, '--role', role, '--json');
    expect(listed.code).toBe(0);
    const rows = JSON.parse(listed.stdout) as { id: string | number }[];
    expect(rows).toHaveLength(1);
    return String(rows[0]!.id);
  }

  test('roles: a <- b <- c from flags and from a YAML file; a cycle is refused naming it', async () => {
    expect(await nodectl('roles', 'create', 'a', '--script', script, '--attr', 'msg=from-a', '--description', 'the base')).toMatchObject({ code: 0 });
    expect((await nodectl('roles', 'create', 'b', '--script', script, '--requires', 'a', '--timeout', '120')).code).toBe(0);
    const yaml = ['name: c', 'requires: [b]', 'attributes:', '  msg: hello', '  replicas: 2', 'script: |', ...recordingScript(log).split('\n').map((l) => `  ${l}`)].join('\n');
    expect((await nodectl('roles', 'create', '--from-file', writeFile(work, 'c.yaml', yaml))).code).toBe(0);

    const listed = await nodectl('roles', 'list');
    expect(listed.code).toBe(0);
    for (const name of ['a', 'b', 'c', 'os-install', 'commission']) expect(listed.stdout).toMatch(new RegExp(`^${name}\\s`, 'm'));
    const shown = await nodectl('roles', 'show', 'c');
    expect(shown.stdout).toMatch(/requires\s+b/);
    expect(shown.stdout).toContain('{"msg":"hello","replicas":2}');
    expect(shown.stdout).toContain('#!/bin/sh');

    const cycle = await nodectl('roles', 'update', 'a', '--requires', 'c');
    expect(cycle.code).toBe(1);
    expect(cycle.stderr).toMatch(/^nodectl: 400 /);
    expect(cycle.stderr).toMatch(/a -> \w -> \w -> a|cycle/);

    // An update changes what its flags name and keeps the rest.
    const updated = await nodectl('roles', 'update', 'a', '--attr', 'level=1', '--json');
    expect(updated.code).toBe(0);
    expect(JSON.parse(updated.stdout)).toMatchObject({ name: 'a', requires: [], attributes: { msg: 'from-a', level: 1 }, description: 'the base', revision: 2 });
  });

  test('a tree of deployments: create under a parent, show, list', async () => {
    expect((await nodectl('deployments', 'create', 'web', '--description', 'the web tier')).code).toBe(0);
    expect((await nodectl('deployments', 'create', 'web-canary', '--parent', 'web')).code).toBe(0);

    const shown = await nodectl('deployments', 'show', 'web');
    expect(shown.code).toBe(0);
    expect(shown.stdout).toContain('system\n`-- web  proposed  0 nodes\n    `-- web-canary  proposed  0 nodes');
    const children = await nodectl('deployments', 'list', '--parent', 'web');
    expect(children.stdout).toMatch(/^web-canary\s+web\s+proposed/m);
    expect(children.stdout).not.toMatch(/^web\s/m);
  });

  test('bind c to three nodes and commit --wait: every noderole ends active, a before b before c on each node', async () => {
    const bound = await nodectl('deployments', 'bind', 'web', 'c', n1, n2, n3);
    expect(bound.code).toBe(0);
    expect(bound.stdout).toContain('(9 noderoles, required roles included)');

    const committed = await nodectl('deployments', 'commit', 'web', '--wait');

    expect(committed.stderr).toMatch(new RegExp(`noderole \\d+ c on ${n3.replace(/\./g, '\\.')}: active`));
    expect(committed.stderr).toContain(`[${'#'.repeat(30)}] 9/9 done  active 9`);
    expect(committed.stdout).toMatch(/commit of web succeeded: 9 active, 0 error, 0 blocked/);
    expect(committed.code).toBe(0);
    const runs = readRuns(log);
    expect(rolesByNode(runs)).toEqual({ [n1]: ['a', 'b', 'c'], [n2]: ['a', 'b', 'c'], [n3]: ['a', 'b', 'c'] });
    // Precedence: the role's defaults reach the script.
    expect(runs.find((r) => r.role === 'c')).toMatchObject({ deployment: 'web', attributes: { msg: 'hello', replicas: 2 } });
    const shown = await nodectl('deployments', 'show', 'web');
    expect(shown.stdout).toMatch(/^deployment\s+web$/m);
    expect(shown.stdout).toMatch(/state\s+committed/);
    expect(shown.stdout).toContain('noderoles: 9 active');
    expect(shown.stdout).toMatch(new RegExp(`^\\d+\\s+${n2.replace(/\./g, '\\.')}\\s+b\\s+active`, 'm'));
  }, 600_000);

  test('re-proposed with one changed attribute (noderoles set, then bind --attr), a commit runs only that noderole', async () => {
    expect((await nodectl('deployments', 'propose', 'web')).code).toBe(0);
    const id = await noderoleId(n2, 'b');
    const set = await nodectl('noderoles', 'set', id, '--attr', 'msg=changed');
    expect(set.code).toBe(0);
    expect(set.stdout).toMatch(/effective\s+\{"msg":"changed"/);
    const before = readRuns(log).length;

    const first = await nodectl('deployments', 'commit', 'web', '--wait');

    expect(first.code).toBe(0);
    expect(readRuns(log).slice(before)).toEqual([{ role: 'b', hostname: n2, deployment: 'web', attributes: expect.objectContaining({ msg: 'changed' }) }]);

    expect((await nodectl('deployments', 'propose', 'web')).code).toBe(0);
    expect((await nodectl('deployments', 'bind', 'web', 'c', n3, '--attr', 'replicas=3')).code).toBe(0);
    const again = readRuns(log).length;

    const second = await nodectl('deployments', 'commit', 'web', '--wait');

    expect(second.code).toBe(0);
    expect(readRuns(log).slice(again)).toEqual([{ role: 'c', hostname: n3, deployment: 'web', attributes: expect.objectContaining({ replicas: 3 }) }]);
    // Nothing changed since: a commit runs nothing and succeeds at once.
    expect((await nodectl('deployments', 'propose', 'web')).code).toBe(0);
    const unchanged = await nodectl('deployments', 'commit', 'web', '--wait');
    expect(unchanged.code).toBe(0);
    expect(unchanged.stdout).toContain('commit of web succeeded: 0 active, 0 error, 0 blocked');
    expect(readRuns(log)).toHaveLength(again + 1);
    const counts = JSON.parse((await nodectl('deployments', 'show', 'web', '--json')).stdout).noderole_counts;
    expect(counts).toMatchObject({ active: 9, todo: 0, error: 0 });
  }, 600_000);

  test("an error blocks what requires it and fails the commit; retry --wait runs them once it can succeed", async () => {
    const marker = path.join(work, 'db-ready');
    expect((await nodectl('deployments', 'create', 'db')).code).toBe(0);
    // The deployment's attributes for a: a runs only once the marker exists.
    const added = await nodectl('deployments', 'add-role', 'db', 'a', '--attr', `fail_until=${marker}`);
    expect(added.code).toBe(0);
    expect((await nodectl('deployments', 'bind', 'db', 'c', n4)).code).toBe(0);

    const failed = await nodectl('deployments', 'commit', 'db', '--wait');

    expect(failed.code).toBe(1);
    expect(failed.stdout).toMatch(new RegExp(`${n4.replace(/\./g, '\\.')}\\s+a\\s+error`));
    expect(failed.stdout).toMatch(/b\s+blocked/);
    expect(failed.stdout).toMatch(/c\s+blocked/);
    expect(failed.stdout).toContain('commit of db failed: 0 active, 1 error, 2 blocked');
    const shown = await nodectl('noderoles', 'show', await noderoleId(n4, 'a'));
    expect(shown.stdout).toMatch(/state\s+error/);
    expect(shown.stdout).toContain(`waiting for ${marker}`);

    fs.writeFileSync(marker, '');
    const retried = await nodectl('noderoles', 'retry', await noderoleId(n4, 'a'), '--wait');

    expect(retried.code).toBe(0);
    expect(retried.stdout).toMatch(/succeeded: 3 active, 0 error, 0 blocked/);
    expect(rolesByNode(readRuns(log).filter((r) => r.deployment === 'db'))).toEqual({ [n4]: ['a', 'b', 'c'] });
  }, 600_000);

  test('move, unbind and delete: a node goes back to system and an empty deployment is deleted', async () => {
    expect((await nodectl('deployments', 'propose', 'db')).code).toBe(0);
    // b requires a: a cannot be unbound before b and c.
    const refused = await nodectl('deployments', 'unbind', 'db', 'a', n4);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^nodectl: 409 /);
    for (const role of ['c', 'b', 'a']) expect((await nodectl('deployments', 'unbind', 'db', role, n4)).code).toBe(0);
    expect((await nodectl('deployments', 'move', 'web-canary', n4)).stdout).toContain(`web-canary: moved ${n4}`);
    expect((await nodectl('deployments', 'show', 'web')).stdout).toContain('`-- web-canary  proposed  1 node');

    expect((await nodectl('deployments', 'move', 'system', n4)).code).toBe(0);
    expect((await nodectl('deployments', 'delete', 'db')).code).toBe(0);
    expect((await nodectl('deployments', 'delete', 'web-canary')).code).toBe(0);
    const gone = await nodectl('deployments', 'show', 'db');
    expect(gone.code).toBe(1);
    expect(gone.stderr).toMatch(/^nodectl: 404 /);
  }, 300_000);

  test('bad input: an unknown role or node is named by the server (exit 1), a bad --attr or a missing flag is a usage error (exit 2)', async () => {
    expect((await nodectl('deployments', 'create', 'scratch')).code).toBe(0);

    const unknownRole = await nodectl('deployments', 'bind', 'scratch', 'ghost', n4);
    expect(unknownRole.code).toBe(1);
    expect(unknownRole.stderr).toMatch(/^nodectl: 4\d\d /);
    expect(unknownRole.stderr).toContain('ghost');
    const unknownRequired = await nodectl('roles', 'create', 'd', '--script', script, '--requires', 'a,nothing-here');
    expect(unknownRequired.code).toBe(1);
    expect(unknownRequired.stderr).toContain('nothing-here');

    const badAttr = await nodectl('deployments', 'bind', 'scratch', 'a', n4, '--attr', 'novalue');
    expect(badAttr.code).toBe(2);
    expect(badAttr.stderr).toContain('--attr takes key=value (the value JSON or plain text), got "novalue"');
    expect((await nodectl('noderoles', 'set', '1', '--attr', '=x')).code).toBe(2);
    expect((await nodectl('roles', 'create', 'd', '--script', path.join(work, 'missing.sh'))).stderr).toContain('cannot read the script');
    expect((await nodectl('roles', 'create', 'd')).code).toBe(2);
    expect((await nodectl('deployments', 'bind', 'scratch', 'a')).code).toBe(2);
    expect((await nodectl('deployments', 'frobnicate')).code).toBe(2);
    // Nothing was bound by the refused requests.
    expect(JSON.parse((await nodectl('noderoles', 'list', '--deployment', 'scratch', '--json')).stdout)).toEqual([]);
  }, 300_000);
});
