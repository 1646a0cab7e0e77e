import { spawn, execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { loadOrCreateIdentity } from '../identity/identity';
import { HostOperations } from './operations';
import { JOIN_EXIT, joinDocumentSchema, type JoinAnswer, type JoinDocument } from './join-document';

/** Where a joined agent keeps its configuration and state, under the sandbox when there is one. */
export function agentPaths(root: string) {
  return {
    config: path.join(root, 'etc/nodeagent/agent.json'),
    stateDir: path.join(root, 'var/lib/nodeagent'),
    pid: path.join(root, 'run/nodeagent.pid'),
    log: path.join(root, 'var/log/nodeagent.log'),
    unit: path.join(root, 'etc/systemd/system/nodeagent.service'),
  };
}

/** The configuration `nodeagent run --config FILE` starts from. */
export interface AgentConfig {
  cluster_name: string;
  server_url: string;
  server_fingerprint: string;
  hostname: string;
  listen: string;
  advertise: string;
  state_dir: string;
  sandbox?: string;
  extra_vars?: Record<string, unknown>;
}

export class JoinRefused extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

async function readIfPresent(file: string): Promise<string | undefined> {
  return fs.readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
}

/** Writes a whole file or nothing: a draft beside it, renamed into place. */
async function writeAtomically(file: string, content: string, mode: number): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o755 });
  const draft = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  await fs.writeFile(draft, content, { mode });
  await fs.rename(draft, file);
}

function parseDocument(text: string): JoinDocument {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new JoinRefused(`the join document is not JSON: ${(err as Error).message}`, JOIN_EXIT.badDocument);
  }
  const parsed = joinDocumentSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || 'document'}: ${i.message}`).join('; ');
    throw new JoinRefused(`the join document is invalid: ${problems}`, JOIN_EXIT.badDocument);
  }
  return parsed.data;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Ganeti's node-daemon-setup: everything is checked before anything is written. A node that holds
 * another cluster's name or server key is refused with nothing touched; a node already joined to this
 * cluster is reported as a member and left as it is; otherwise the identity, the server pin and the
 * configuration are written (each atomically, the configuration last: it is what makes the node a
 * member) and the agent is started.
 */
export async function join(documentText: string): Promise<JoinAnswer> {
  const doc = parseDocument(documentText);
  // Sandbox slowness injection, as for the agent's own operations: slow/join holding milliseconds.
  const delay = doc.sandbox ? await new HostOperations(doc.sandbox).injectedDelay('join') : 0;
  if (delay > 0) await sleep(delay);
  const root = doc.sandbox ?? '/';
  const paths = agentPaths(root);
  const existing = await readIfPresent(paths.config);
  const config: Partial<AgentConfig> | undefined = existing === undefined ? undefined : JSON.parse(existing);
  const pin = (await readIfPresent(path.join(paths.stateDir, 'server.fingerprint')))?.trim() || undefined;

  if (config?.cluster_name && config.cluster_name !== doc.cluster_name) {
    throw new JoinRefused(`this node belongs to cluster ${JSON.stringify(config.cluster_name)}, not ${JSON.stringify(doc.cluster_name)}; nothing was written`, JOIN_EXIT.otherCluster);
  }
  if (pin && pin !== doc.server_fingerprint) {
    throw new JoinRefused(`this node pins the server key ${pin}, not ${doc.server_fingerprint}; nothing was written`, JOIN_EXIT.otherCluster);
  }
  if (config?.hostname && doc.hostname && config.hostname !== doc.hostname) {
    throw new JoinRefused(`this node joined as ${config.hostname}, not ${doc.hostname}; nothing was written`, JOIN_EXIT.otherCluster);
  }

  if (config?.cluster_name && config.hostname) {
    const identityFile = path.join(paths.stateDir, 'identity.key');
    if (await readIfPresent(identityFile)) {
      const identity = await loadOrCreateIdentity(paths.stateDir, config.hostname);
      return { status: 'already_member', hostname: config.hostname, fingerprint: identity.fingerprint, agent: await agentState(paths, doc) };
    }
  }

  const hostname = doc.hostname ?? config?.hostname ?? (await ownHostname(doc));
  const identity = await loadOrCreateIdentity(paths.stateDir, hostname);
  await writeAtomically(path.join(paths.stateDir, 'server.fingerprint'), `${doc.server_fingerprint}\n`, 0o600);
  const agentConfig: AgentConfig = {
    cluster_name: doc.cluster_name,
    server_url: doc.server_url,
    server_fingerprint: doc.server_fingerprint,
    hostname,
    listen: doc.agent_listen,
    advertise: doc.advertise,
    state_dir: paths.stateDir,
    ...(doc.sandbox ? { sandbox: doc.sandbox } : {}),
    ...(doc.extra_vars ? { extra_vars: doc.extra_vars } : {}),
  };
  await writeAtomically(paths.config, `${JSON.stringify(agentConfig, null, 2)}\n`, 0o600);
  const agent = doc.start_agent ? await startAgentProcess(paths, doc) : 'not_started';
  return { status: 'joined', hostname, fingerprint: identity.fingerprint, agent };
}

/** The host's own name: /etc/hostname under a sandbox (each simulated node has one), else the kernel's. */
async function ownHostname(doc: JoinDocument): Promise<string> {
  if (doc.sandbox) {
    const named = (await readIfPresent(path.join(doc.sandbox, 'etc/hostname')))?.trim();
    if (named) return named;
  }
  return os.hostname();
}

async function agentState(paths: ReturnType<typeof agentPaths>, doc: JoinDocument): Promise<JoinAnswer['agent']> {
  if (!doc.sandbox && (await hasSystemd())) {
    const active = await promisify(execFile)('systemctl', ['is-active', '--quiet', 'nodeagent']).then(
      () => true,
      () => false,
    );
    return active ? 'running' : 'not_running';
  }
  const pid = Number((await readIfPresent(paths.pid))?.trim());
  return pid > 0 && processAlive(pid) ? 'running' : 'not_running';
}

async function hasSystemd(): Promise<boolean> {
  return fs.stat('/run/systemd/system').then(
    () => true,
    () => false,
  );
}

/** The command that runs this very program as the agent, from the configuration just written. */
function agentCommand(configFile: string): string[] {
  return [process.execPath, ...process.execArgv, process.argv[1]!, 'run', '--config', configFile];
}

/** Under systemd when the host has it (a unit, enabled and started); otherwise a detached process with a pid file. */
async function startAgentProcess(paths: ReturnType<typeof agentPaths>, doc: JoinDocument): Promise<JoinAnswer['agent']> {
  const command = agentCommand(paths.config);
  if (!doc.sandbox && (await hasSystemd())) {
    const unit = [
      '[Unit]',
      'Description=node lifecycle agent',
      'After=network-online.target',
      'Wants=network-online.target',
      '',
      '[Service]',
      `ExecStart=${command.map((word) => (/[\s"\\]/.test(word) ? JSON.stringify(word) : word)).join(' ')}`,
      'Restart=always',
      'RestartSec=5',
      '',
      '[Install]',
      'WantedBy=multi-user.target',
      '',
    ].join('\n');
    await writeAtomically(paths.unit, unit, 0o644);
    const run = promisify(execFile);
    await run('systemctl', ['daemon-reload']);
    await run('systemctl', ['enable', '--now', 'nodeagent']);
    return 'started';
  }
  await fs.mkdir(path.dirname(paths.log), { recursive: true });
  await fs.mkdir(path.dirname(paths.pid), { recursive: true });
  const log = await fs.open(paths.log, 'a');
  try {
    // Its own session: the agent outlives the SSH session that started it.
    const child = spawn(command[0]!, command.slice(1), { detached: true, stdio: ['ignore', log.fd, log.fd] });
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', reject);
    });
    await writeAtomically(paths.pid, `${child.pid}\n`, 0o644);
    child.unref();
  } finally {
    await log.close();
  }
  return 'started';
}

/** Reads a configuration written by join, for `nodeagent run --config FILE`. */
export async function readAgentConfig(file: string): Promise<AgentConfig> {
  const text = await fs.readFile(file, 'utf8');
  return JSON.parse(text) as AgentConfig;
}
