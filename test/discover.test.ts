import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ensureAgentBundle } from '../src/dev/agent-bundle';
import { agentPaths } from '../src/agent/join';
import { nodeState, startTestAgent, startTestService, type TestAgent, type TestService } from './support/harness';
import { nodectl as runNodectl } from './support/nodectl';
import { freePort, nextLoopbackAddress } from './support/ports';
import { startSshd, type TestSshd } from './support/sshd';
import { waitFor } from './support/wait-for';

jest.setTimeout(300_000);

/**
 * Adding machines by address over real SSH: OpenSSH's sshd per machine on its own loopback address, the
 * service's ssh2 client, and the real join program (the agent bundle) run by sshd, each machine's files
 * under a sandbox directory of its own.
 */
let ts: TestService;
let publicKey: string;
let lab: string;
let bundlePath: string;

/** The service as these tests run it: the real join program (the agent bundle), each machine's files in a sandbox of its own. */
function discoverEnv(): Record<string, string> {
  return {
    CLUSTER_NAME: 'lab',
    DISCOVER_JOIN_COMMAND: `${process.execPath} ${bundlePath} join`,
    DISCOVER_SANDBOX: `${lab}/{host}-{port}`,
    DISCOVER_CONNECT_TIMEOUT: '20s',
    // The joined agents initialize like accepted ones; a loaded machine needs more than the tests' usual 4 s.
    INIT_WINDOW: '60s',
  };
}
const sshds: TestSshd[] = [];
const strays: TestAgent[] = [];

beforeAll(async () => {
  const bundle = await ensureAgentBundle();
  lab = fs.mkdtempSync(path.join(os.tmpdir(), 'nl-discover-'));
  bundlePath = bundle;
  ts = await startTestService(discoverEnv());
  publicKey = (await ts.api.get('/api/v1/ssh/public_key')).body.public_key;
}, 300_000);

afterAll(async () => {
  // The joined agents run detached, as on a real machine: stop them by their pid files.
  for (const entry of lab ? fs.readdirSync(lab) : []) {
    const pidFile = agentPaths(path.join(lab, entry)).pid;
    const pid = fs.existsSync(pidFile) ? Number(fs.readFileSync(pidFile, 'utf8').trim()) : 0;
    if (pid > 0) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // already gone
      }
    }
  }
  await Promise.all(strays.map((a) => a.stop()));
  await Promise.all(sshds.map((s) => s.stop()));
  await ts?.stop();
}, 120_000);

interface Machine {
  sshd: TestSshd;
  hostname: string;
  sandbox: string;
}

/** A machine to add: a sandbox with its host name, and sshd on a loopback address of its own that lets the service in. */
async function machine(
  label: string,
  options: { keyTypes?: string[]; authorized?: boolean; extraAuthorized?: string[]; sandboxFiles?: Record<string, string> } = {},
): Promise<Machine> {
  const host = nextLoopbackAddress();
  const port = await freePort();
  const sandbox = path.join(lab, `${host}-${port}`);
  const hostname = ts.hostname(label);
  fs.mkdirSync(path.join(sandbox, 'etc'), { recursive: true });
  fs.writeFileSync(path.join(sandbox, 'etc/hostname'), `${hostname}\n`);
  for (const [file, content] of Object.entries(options.sandboxFiles ?? {})) {
    fs.mkdirSync(path.dirname(path.join(sandbox, file)), { recursive: true });
    fs.writeFileSync(path.join(sandbox, file), content);
  }
  const authorizedKeys = [...(options.authorized === false ? [] : [publicKey]), ...(options.extraAuthorized ?? [])];
  const sshd = await startSshd({ host, port, authorizedKeys, keyTypes: options.keyTypes });
  sshds.push(sshd);
  return { sshd, hostname, sandbox };
}

async function discover(body: unknown) {
  const res = await ts.api.post('/api/v1/discover/nodes', body);
  expect(res.status).toBe(202);
  return res.body.task_id as string;
}

async function finished(taskId: string) {
  return waitFor(
    async () => (await ts.api.get(`/api/v1/tasks/${taskId}`)).body,
    (t) => t.status === 'succeeded' || t.status === 'failed',
    { what: `task ${taskId} to finish`, timeoutMs: 240_000, intervalMs: 250 },
  );
}

const rowOf = (task: any, address: string) => task.nodes.find((n: any) => n.address === address);

/** Every file under a directory with its content, to show that nothing was written. */
function snapshot(dir: string): Record<string, string> {
  const files: Record<string, string> = {};
  const walk = (d: string) => {
    for (const entry of fs.readdirSync(d, { withFileTypes: true })) {
      const full = path.join(d, entry.name);
      if (entry.isDirectory()) walk(full);
      else files[path.relative(dir, full)] = `${fs.statSync(full).mtimeMs}:${fs.readFileSync(full, 'utf8')}`;
    }
  };
  walk(dir);
  return files;
}

describe('discover over SSH', () => {
  let joined: Machine[];

  test('three machines join and become active with no manual accept; an unreachable address fails alone, naming connect', async () => {
    joined = [await machine('ssh-a'), await machine('ssh-b', { keyTypes: ['rsa', 'ed25519'] }), await machine('ssh-c', { keyTypes: ['ed25519', 'rsa'] })];
    const unreachable = `${nextLoopbackAddress()}:${await freePort()}`;
    const taskId = await discover({
      addresses: [...joined.map((m) => m.sshd.address), unreachable],
      ssh: {
        host_key_policy: 'pinned',
        host_keys: {
          [joined[0]!.sshd.address]: joined[0]!.sshd.fingerprints.ed25519,
          // Pinned with its type: the RSA key is offered although the host prefers ed25519.
          [joined[1]!.sshd.address]: `ssh-rsa ${joined[1]!.sshd.fingerprints.rsa}`,
          // A bare fingerprint of its second key: found by trying one key type per handshake, not a false mismatch.
          [joined[2]!.sshd.address]: joined[2]!.sshd.fingerprints.rsa,
          [unreachable]: joined[0]!.sshd.fingerprints.ed25519,
        },
      },
    });
    const task = await finished(taskId);

    expect(task.status).toBe('failed');
    expect(task.progress).toMatchObject({ total: 4, succeeded: 3, failed: 1 });
    for (const m of joined) {
      expect(rowOf(task, m.sshd.address)).toMatchObject({ status: 'succeeded', hostname: m.hostname, result: { outcome: 'joined' } });
      const node = (await ts.api.get(`/api/v1/nodes/${m.hostname}`)).body;
      expect(node.state).toBe('active');
      // The key the join reported over SSH is the key the node is managed under.
      const identity = fs.readFileSync(path.join(agentPaths(m.sandbox).stateDir, 'identity.key'), 'utf8');
      expect(identity).toContain('PRIVATE KEY');
      expect(node.fingerprint).toBe(rowOf(task, m.sshd.address).result.fingerprint);
      // Nobody accepted it by hand: the node's history says on whose word it was accepted.
      expect(node.events.find((e: any) => e.event === 'accept').cause).toContain(`SSH join at ${m.sshd.address} reported (task ${taskId})`);
      // The configuration names this cluster and pins this server.
      const config = JSON.parse(fs.readFileSync(agentPaths(m.sandbox).config, 'utf8'));
      expect(config).toMatchObject({ cluster_name: 'lab', hostname: m.hostname, server_fingerprint: ts.service.serverFingerprint });
    }
    expect(rowOf(task, unreachable)).toMatchObject({ status: 'failed', step: 'connect' });
    expect(rowOf(task, unreachable).error).toMatch(/^connect: cannot connect to /);
  });

  test('a re-run is a no-op: every address is already a member and nothing on the machines changes', async () => {
    const before = joined.map((m) => snapshot(m.sandbox));
    const eventsOf = async (m: Machine) => (await ts.api.get(`/api/v1/nodes/${m.hostname}`)).body.events;
    const events = await Promise.all(joined.map(eventsOf));
    expect(events.every((list) => list.length > 0)).toBe(true);
    const taskId = await discover({ addresses: joined.map((m) => m.sshd.address), ssh: { host_key_policy: 'tofu' } });
    const task = await finished(taskId);

    expect(task.status).toBe('succeeded');
    for (const m of joined) expect(rowOf(task, m.sshd.address)).toMatchObject({ status: 'succeeded', result: { outcome: 'already_member' } });
    expect(joined.map((m) => snapshot(m.sandbox))).toEqual(before);
    expect(await Promise.all(joined.map(eventsOf))).toEqual(events);
    // No SSH connection was even made.
    for (const m of joined) expect(m.sshd.log().match(/Accepted publickey/g)).toHaveLength(1);
  });

  test('a wrong pinned key: the connection is dropped before authentication and nothing runs on the machine', async () => {
    const m = await machine('ssh-wrongpin');
    const other = await machine('ssh-other');
    const taskId = await discover({ addresses: [m.sshd.address], ssh: { host_keys: { [m.sshd.address]: other.sshd.fingerprints.ed25519 } } });
    const task = await finished(taskId);

    expect(rowOf(task, m.sshd.address)).toMatchObject({ status: 'failed', step: 'host_key' });
    expect(rowOf(task, m.sshd.address).error).toContain('host key mismatch');
    expect(fs.existsSync(agentPaths(m.sandbox).config)).toBe(false);
    expect(fs.existsSync(agentPaths(m.sandbox).stateDir)).toBe(false);
    expect(m.sshd.log()).not.toContain('Accepted publickey');
    expect((await ts.api.get(`/api/v1/nodes/${m.hostname}`)).status).toBe(404);
  });

  test('tofu records the first key; a changed key then fails with host_key_mismatch until an operator forgets it', async () => {
    // First contact: the key is recorded, though the machine does not let the service in yet.
    const first = await machine('ssh-tofu', { authorized: false });
    const address = first.sshd.address;
    const refused = await finished(await discover({ addresses: [address], ssh: { host_key_policy: 'tofu' } }));
    expect(rowOf(refused, address)).toMatchObject({ status: 'failed', step: 'auth' });
    const known = (await ts.api.get('/api/v1/ssh/known_hosts')).body.find((h: any) => h.address === address);
    expect(known).toMatchObject({ key_type: 'ed25519', fingerprint: first.sshd.fingerprints.ed25519 });

    // The machine is reinstalled: same address, new host key, and now the service's key is authorized.
    await first.sshd.stop();
    const again = await startSshd({ host: first.sshd.host, port: first.sshd.port, authorizedKeys: [publicKey] });
    sshds.push(again);
    const mismatch = await finished(await discover({ addresses: [address], ssh: { host_key_policy: 'tofu' } }));
    expect(rowOf(mismatch, address)).toMatchObject({ status: 'failed', step: 'host_key' });
    expect(rowOf(mismatch, address).error).toContain('host key mismatch');
    expect(again.log()).not.toContain('Accepted publickey');
    expect(fs.existsSync(agentPaths(first.sandbox).config)).toBe(false);

    expect((await ts.api.request('DELETE', `/api/v1/ssh/known_hosts/${address}`)).status).toBe(204);
    const joinedNow = await finished(await discover({ addresses: [address], ssh: { host_key_policy: 'tofu' } }));
    expect(rowOf(joinedNow, address)).toMatchObject({ status: 'succeeded', result: { outcome: 'joined' } });
    expect(await nodeState(ts, first.hostname)).toBe('active');
  });

  test("a machine of another cluster refuses to join and nothing is written on it", async () => {
    const foreign = JSON.stringify({ cluster_name: 'elsewhere', hostname: 'x', server_url: 'http://10.9.9.9:8080' });
    const m = await machine('ssh-foreign', { sandboxFiles: { 'etc/nodeagent/agent.json': foreign } });
    const before = snapshot(m.sandbox);
    const task = await finished(await discover({ addresses: [m.sshd.address], ssh: { host_key_policy: 'tofu' } }));

    expect(rowOf(task, m.sshd.address)).toMatchObject({ status: 'failed', step: 'join' });
    expect(rowOf(task, m.sshd.address).error).toContain('belongs to cluster "elsewhere"');
    expect(snapshot(m.sandbox)).toEqual(before);
  });

  test('another key announcing the same host name stays out and is named on the task', async () => {
    const m = await machine('ssh-contested');
    const impostor = await startTestAgent(ts, m.hostname);
    strays.push(impostor);
    await waitFor(() => nodeState(ts, m.hostname), (s) => s === 'unmanaged', { what: 'the impostor to announce' });
    const task = await finished(await discover({ addresses: [m.sshd.address], ssh: { host_key_policy: 'tofu' } }));

    const row = rowOf(task, m.sshd.address);
    expect(row).toMatchObject({ status: 'succeeded', result: { outcome: 'joined' } });
    const node = (await ts.api.get(`/api/v1/nodes/${m.hostname}`)).body;
    expect(node.fingerprint).toBe(row.result.fingerprint);
    expect(node.fingerprint).not.toBe(impostor.fingerprint);
    expect(row.result.refused_keys.map((k: any) => k.fingerprint)).toEqual([impostor.fingerprint]);
  });
});

describe('restarts', () => {
  test('the service restarted in the middle of a join: the address carries on and its node becomes active', async () => {
    // The join on this machine takes 4 s (sandbox slowness injection), long enough to restart the service under it.
    const m = await machine('ssh-restart', { sandboxFiles: { 'slow/join': '4000' } });
    const taskId = await discover({ addresses: [m.sshd.address], ssh: { host_key_policy: 'tofu' } });
    await waitFor(async () => m.sshd.log(), (log) => log.includes('Accepted publickey'), { what: 'the join to start', timeoutMs: 120_000 });
    await ts.restart();

    const task = await finished(taskId);
    expect(rowOf(task, m.sshd.address)).toMatchObject({ status: 'succeeded', result: { outcome: 'joined' } });
    expect(await nodeState(ts, m.hostname)).toBe('active');
  });
});

describe('an ssh-agent', () => {
  let withAgent: TestService;
  let sshAgent: ChildProcess | undefined;
  let agentKey: string;

  beforeAll(async () => {
    // A real ssh-agent holding a key of its own: the machine authorizes that key only, not the service's.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nl-ssh-agent-'));
    const socket = path.join(dir, 'agent.sock');
    execFileSync('ssh-keygen', ['-t', 'ed25519', '-N', '', '-q', '-f', path.join(dir, 'operator')]);
    agentKey = fs.readFileSync(path.join(dir, 'operator.pub'), 'utf8').trim();
    sshAgent = spawn('ssh-agent', ['-D', '-a', socket], { stdio: 'ignore' });
    await waitFor(async () => fs.existsSync(socket), Boolean, { what: 'the ssh-agent socket' });
    execFileSync('ssh-add', ['-q', path.join(dir, 'operator')], { env: { ...process.env, SSH_AUTH_SOCK: socket } });
    withAgent = await startTestService({ ...discoverEnv(), SSH_AUTH_SOCK: socket });
  }, 300_000);
  afterAll(async () => {
    await withAgent?.stop();
    sshAgent?.kill();
  });

  test("a machine that accepts only the ssh-agent's key joins", async () => {
    const m = await machine('ssh-agentkey', { authorized: false, extraAuthorized: [agentKey] });
    const res = await withAgent.api.post('/api/v1/discover/nodes', { addresses: [m.sshd.address], ssh: { host_key_policy: 'tofu' } });
    const task = await waitFor(
      async () => (await withAgent.api.get(`/api/v1/tasks/${res.body.task_id}`)).body,
      (t) => t.status === 'succeeded' || t.status === 'failed',
      { what: 'the discovery', timeoutMs: 240_000, intervalMs: 250 },
    );
    expect(rowOf(task, m.sshd.address)).toMatchObject({ status: 'succeeded', result: { outcome: 'joined' } });
    expect(m.sshd.log()).toContain('Accepted publickey');
  });
});

describe('a user whose sudo wants a password', () => {
  const user = 'nl-nosudo';
  beforeAll(() => {
    // A real account on this machine, not in sudoers, that sshd lets in with a key ('*': no password, not locked).
    try {
      execFileSync('id', [user], { stdio: 'ignore' });
    } catch {
      execFileSync('useradd', ['--create-home', '--shell', '/bin/sh', user]);
    }
    execFileSync('usermod', ['-p', '*', user]);
  });

  test('fails at once at the sudo step, naming it, and the join never runs', async () => {
    const m = await machine('ssh-sudo');
    const task = await finished(await discover({ addresses: [m.sshd.address], ssh: { user, host_key_policy: 'tofu' } }));

    expect(rowOf(task, m.sshd.address)).toMatchObject({ status: 'failed', step: 'sudo' });
    expect(rowOf(task, m.sshd.address).error).toMatch(/nl-nosudo cannot run sudo without a password .*password is required/);
    expect(m.sshd.log()).toContain(`Accepted publickey for ${user}`);
    expect(fs.existsSync(agentPaths(m.sandbox).config)).toBe(false);
  });
});

describe('refusals name every offender and start nothing', () => {
  test('empty, malformed, repeated and unpinned addresses', async () => {
    const tasksBefore = (await ts.api.get('/api/v1/tasks?limit=1000')).body.length;
    const empty = await ts.api.post('/api/v1/discover/nodes', { addresses: [] });
    expect(empty.status).toBe(400);
    expect(empty.body.error.message).toContain('addresses must name at least one address');

    const res = await ts.api.post('/api/v1/discover/nodes', {
      addresses: ['127.0.0.5', 'bad host!', '127.0.0.5:22', 'example.org:99999', '[::1]:2222'],
      ssh: { host_keys: { '127.0.0.5': 'SHA256:nonsense', '10.1.1.1': 'SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' } },
    });
    expect(res.status).toBe(400);
    const fields = res.body.error.fields.map((f: any) => f.field);
    expect(fields).toEqual(
      expect.arrayContaining(['addresses[1]', 'addresses[2]', 'addresses[3]', 'ssh.host_keys["127.0.0.5"]', 'ssh.host_keys["10.1.1.1"]', 'ssh.host_keys']),
    );
    expect(res.body.error.message).toContain('repeats addresses[0] (127.0.0.5:22)');
    expect(res.body.error.message).toContain('has no key for 127.0.0.5:22, [::1]:2222');
    expect(res.body.error.message).toContain('not in addresses');

    const shape = await ts.api.post('/api/v1/discover/nodes', { addresses: ['127.0.0.5'], ssh: { host_key_policy: 'trust-me' } });
    expect(shape.status).toBe(400);
    expect((await ts.api.get('/api/v1/tasks?limit=1000')).body.length).toBe(tasksBefore);
  });

  test('forgetting a host key that is not recorded is a 404; a malformed address a 400', async () => {
    expect((await ts.api.request('DELETE', '/api/v1/ssh/known_hosts/127.0.0.99:22')).status).toBe(404);
    expect((await ts.api.request('DELETE', '/api/v1/ssh/known_hosts/not%20an%20address')).status).toBe(400);
  });
});

describe('nodectl', () => {
  test('nodes discover --tofu --wait brings two machines to active with a progress bar and a per-address table', async () => {
    const [a, b] = [await machine('cli-a'), await machine('cli-b')];
    const out = await runNodectl(ts, ['nodes', 'discover', a.sshd.address, b.sshd.address, '--tofu', '--wait']);

    expect(out.code).toBe(0);
    expect(out.stderr).toMatch(/\[#+\] 2\/2 done/);
    expect(out.stdout).toMatch(new RegExp(`${a.sshd.address.replace(/\./g, '\\.')}\\s+${a.hostname}\\s+joined`));
    expect(out.stdout).toMatch(new RegExp(`${b.sshd.address.replace(/\./g, '\\.')}\\s+${b.hostname}\\s+joined`));
    expect(await nodeState(ts, a.hostname)).toBe('active');
    expect(await nodeState(ts, b.hostname)).toBe('active');

    const key = await runNodectl(ts, ['ssh', 'public-key']);
    expect(key.stdout.trim()).toBe(publicKey);
  });

  test('a failed address makes the exit status 1, with its step in the table', async () => {
    const m = await machine('cli-noauth', { authorized: false });
    const out = await runNodectl(ts, ['nodes', 'discover', m.sshd.address, '--tofu', '--wait']);
    expect(out.code).toBe(1);
    expect(out.stdout).toMatch(/failed\s+auth\s+auth: /);
  });
});
