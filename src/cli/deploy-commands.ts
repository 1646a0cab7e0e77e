import { forEachLimited } from '../concurrency';
import { CliError, type ApiClient } from './client';
import { DeployView, exitCodeOf, summaryTable, watchDeploy, type NodeSnapshot, type TaskSnapshot } from './deploy-watch';

type Out = (text: string) => void;

export const DEPLOY_USAGE = `  nodectl nodes deploy NAME... --image X [--wait]              install an OS image (queued past the deploy cap)
  nodectl nodes rebuild NAME --image X [--wait]                install again over a deployed node
  nodectl nodes abort NAME                                     stop a queued or running deploy`;

export interface DeployFlags {
  json: boolean;
  wait: boolean;
  image?: string;
}

const nodePath = (name: string) => `/api/v1/nodes/${encodeURIComponent(name)}`;

/** The node, or null when the service answers 404 (the client's errors start with the status). */
async function fetchNode(api: ApiClient, name: string): Promise<NodeSnapshot | null> {
  try {
    return await api.request<NodeSnapshot>('GET', nodePath(name));
  } catch (err) {
    if (err instanceof CliError && err.message.startsWith('404 ')) return null;
    throw err;
  }
}

/** Each node's deploy task before the request: the watch must not take an earlier deploy's result for this one. */
async function baselineOf(api: ApiClient, names: string[]): Promise<Map<string, string | null>> {
  const baseline = new Map<string, string | null>();
  await forEachLimited(names, 8, async (name) => {
    baseline.set(name, (await fetchNode(api, name))?.deploy?.task_id ?? null);
  });
  return baseline;
}

async function follow(api: ApiClient, names: string[], taskId: string, baseline: Map<string, string | null>, flags: DeployFlags, out: Out): Promise<number> {
  const startedAt = Date.now();
  const view = new DeployView({
    tty: !flags.json && process.stderr.isTTY === true,
    write: flags.json ? () => undefined : (text) => process.stderr.write(text),
    columns: process.stderr.columns,
    maxRows: Math.max(3, (process.stderr.rows ?? 42) - 2),
  });
  const progress = await watchDeploy({
    hostnames: names,
    baseline,
    taskId,
    fetchNode: (name) => fetchNode(api, name),
    fetchTask: () => api.request<TaskSnapshot>('GET', `/api/v1/tasks/${encodeURIComponent(taskId)}`),
    view,
  });
  if (flags.json) out(JSON.stringify(progress.map((p) => ({ hostname: p.hostname, state: p.state, deploy: p.deploy, note: p.note })), null, 2));
  else out(summaryTable(progress, startedAt));
  return exitCodeOf(progress);
}

export async function deployNodes(api: ApiClient, names: string[], flags: DeployFlags, out: Out): Promise<number> {
  if (names.length === 0 || !flags.image) throw new CliError('usage: nodectl nodes deploy NAME... --image X [--wait]', 2);
  const baseline = flags.wait ? await baselineOf(api, names) : new Map();
  const started = await api.request('POST', '/api/v1/deploy/nodes', { nodes: names, image: flags.image });
  if (!flags.wait) {
    out(flags.json ? JSON.stringify(started) : `deploy of ${flags.image} to ${names.length} node(s): task ${started.task_id}`);
    return 0;
  }
  return follow(api, names, started.task_id, baseline, flags, out);
}

export async function rebuildNode(api: ApiClient, names: string[], flags: DeployFlags, out: Out): Promise<number> {
  if (names.length !== 1 || !flags.image) throw new CliError('usage: nodectl nodes rebuild NAME --image X [--wait]', 2);
  const name = names[0]!;
  const baseline = flags.wait ? await baselineOf(api, names) : new Map();
  const started = await api.request('PUT', `${nodePath(name)}/states/provision`, { target: 'rebuild', image: flags.image });
  if (!flags.wait) {
    out(flags.json ? JSON.stringify(started) : `${name}: rebuild with ${flags.image} started (task ${started.task_id})`);
    return 0;
  }
  return follow(api, names, started.task_id, baseline, flags, out);
}

export async function abortDeploy(api: ApiClient, names: string[], flags: DeployFlags, out: Out): Promise<number> {
  if (names.length !== 1) throw new CliError('usage: nodectl nodes abort NAME', 2);
  const name = names[0]!;
  const started = await api.request('PUT', `${nodePath(name)}/states/provision`, { target: 'abort' });
  out(flags.json ? JSON.stringify(started) : `${name}: abort requested (task ${started.task_id}); now ${started.state}`);
  return 0;
}
