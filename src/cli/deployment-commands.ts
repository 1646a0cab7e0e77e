import { CliError, type ApiClient } from './client';
import { annealSummary, AnnealView, watchAnneal, type AnnealTask } from './anneal-watch';
import { table } from './render';
import { attrsText, parseAttrs } from './role-commands';

type Out = (text: string) => void;

export const DEPLOYMENTS_USAGE = `  nodectl deployments create NAME [--parent P] [--description D]   a proposed child of P (default system)
  nodectl deployments list [--parent P] [--state S] [--limit N]   the tree as a list, with noderole counts
  nodectl deployments show NAME                                its tree, roles, noderoles and their states
  nodectl deployments add-role NAME ROLE [--attr k=v]...       the deployment's attributes for ROLE (replaced)
  nodectl deployments bind NAME ROLE NODE... [--attr k=v]...   a noderole per node, required roles included
  nodectl deployments unbind NAME ROLE NODE...
  nodectl deployments move NAME NODE...                        move nodes in (move to system to give them back)
  nodectl deployments propose NAME                             editable again
  nodectl deployments commit NAME [--wait]                     run what changed, in dependency order
  nodectl deployments delete NAME                              only when empty
  nodectl noderoles list [--deployment D] [--node N] [--role R] [--state S] [--limit N]
  nodectl noderoles show ID
  nodectl noderoles set ID --attr k=v... [--unset KEY]...      the noderole's own attributes (proposed only)
  nodectl noderoles retry ID [--wait]                          run a noderole in error again, and what it blocked`;

/** The flags nodectl.ts adds to its parseArgs table for deployments and noderoles (--attr comes with the roles'). */
export const DEPLOYMENT_OPTIONS = {
  parent: { type: 'string' },
  deployment: { type: 'string' },
  node: { type: 'string' },
  role: { type: 'string' },
  state: { type: 'string' },
} as const;

export interface DeploymentFlags {
  json: boolean;
  wait: boolean;
  limit?: number;
  parent?: string;
  description?: string;
  deployment?: string;
  node?: string;
  role?: string;
  state?: string;
  attr?: string[];
  unset?: string[];
}

type Counts = Record<'proposed' | 'todo' | 'transition' | 'active' | 'error' | 'blocked', number>;

/** A deployment as GET /api/v1/deployments lists it. */
interface Deployment {
  name: string;
  parent: string | null;
  state: 'proposed' | 'committed';
  description: string;
  nodes: number;
  noderole_counts: Counts;
  committed_at: string | null;
}

export interface TreeNode {
  name: string;
  state: string;
  nodes: number;
  children: TreeNode[];
}

/** GET /api/v1/deployments/{name}: the deployment with its subtree, ancestry, roles and noderoles. */
interface DeploymentDetail extends Deployment {
  tree: TreeNode;
  path: string[];
  roles: { role: string; attributes: Record<string, unknown> }[];
  noderoles: Noderole[];
  /** More noderoles than the detail shows: read them all from GET /noderoles?deployment=. */
  noderoles_truncated?: boolean;
}

interface Noderole {
  id: string | number;
  deployment: string;
  role: string;
  node: string;
  state: string;
  attributes: Record<string, unknown>;
  effective_attributes: Record<string, unknown>;
  requires: string[];
  error: string | null;
  task_id: string | null;
  operation_id: string | number | null;
  result: { exit_code?: number; stdout?: string; stderr?: string } | null;
  started_at: string | null;
  finished_at: string | null;
}

const COUNT_ORDER: (keyof Counts)[] = ['proposed', 'todo', 'transition', 'active', 'error', 'blocked'];

/** `3 active, 1 error`: the states that have any noderole, in lifecycle order. */
export function countsText(counts: Partial<Counts> | null | undefined): string {
  const parts = COUNT_ORDER.filter((s) => (counts?.[s] ?? 0) > 0).map((s) => `${counts![s]} ${s}`);
  return parts.length > 0 ? parts.join(', ') : 'none';
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/**
 * The deployment's place in the tree: its ancestors by name from `system`, then its subtree with each
 * deployment's state and node count (ASCII, so it pipes and logs cleanly).
 */
export function renderTree(path: readonly string[], tree: TreeNode): string {
  const ancestors = path.length > 0 && path[path.length - 1] === tree.name ? path.slice(0, -1) : path;
  const lines: string[] = [];
  let indent = '';
  ancestors.forEach((name, i) => {
    lines.push(i === 0 ? name : `${indent}\`-- ${name}`);
    if (i > 0) indent += '    ';
  });
  const label = (t: TreeNode) => `${t.name}  ${t.state}  ${plural(t.nodes, 'node')}`;
  const walk = (t: TreeNode, prefix: string, connector: string, childPrefix: string) => {
    lines.push(`${prefix}${connector}${label(t)}`);
    t.children.forEach((child, i) => {
      const last = i === t.children.length - 1;
      walk(child, childPrefix, last ? '`-- ' : '|-- ', `${childPrefix}${last ? '    ' : '|   '}`);
    });
  };
  if (ancestors.length === 0) walk(tree, '', '', '');
  else walk(tree, indent, '`-- ', `${indent}    `);
  return lines.join('\n');
}

const noderoleTable = (noderoles: Noderole[]) => table(['ID', 'NODE', 'ROLE', 'STATE', 'ERROR'], noderoles.map((n) => [n.id, n.node, n.role, n.state, n.error]));

const deploymentPath = (name: string) => `/api/v1/deployments/${encodeURIComponent(name)}`;
const noderolePath = (id: string) => `/api/v1/noderoles/${encodeURIComponent(id)}`;

function query(params: Record<string, string | undefined>): string {
  const search = new URLSearchParams(Object.entries(params).filter((e): e is [string, string] => e[1] !== undefined));
  return search.size > 0 ? `?${search}` : '';
}

function usage(text: string): never {
  throw new CliError(`usage: nodectl ${text}`, 2);
}

/** Follows an anneal task (a commit or a retry) with a live view on stderr; 0 when it succeeded. */
async function followAnneal(api: ApiClient, taskId: string, what: string, flags: DeploymentFlags, out: Out): Promise<number> {
  const view = new AnnealView({
    tty: !flags.json && process.stderr.isTTY === true,
    write: flags.json ? () => undefined : (text) => process.stderr.write(text),
    columns: process.stderr.columns,
    maxRows: Math.max(3, (process.stderr.rows ?? 42) - 3),
  });
  const task = await watchAnneal({ fetchTask: () => api.request<AnnealTask>('GET', `/api/v1/tasks/${encodeURIComponent(taskId)}`), view });
  out(flags.json ? JSON.stringify(task, null, 2) : annealSummary(task, what));
  return task.status === 'succeeded' ? 0 : 1;
}

async function showDeployment(api: ApiClient, name: string, flags: DeploymentFlags, out: Out): Promise<number> {
  const d = await api.request<DeploymentDetail>('GET', deploymentPath(name));
  const total = COUNT_ORDER.reduce((sum, s) => sum + (d.noderole_counts?.[s] ?? 0), 0);
  // The detail carries the first 1000 noderoles; a bigger deployment is read whole, page by page.
  const noderoles = (d.noderoles_truncated ?? total > d.noderoles.length) ? await api.list<Noderole>(`/api/v1/noderoles${query({ deployment: name })}`) : d.noderoles;
  if (flags.json) {
    out(JSON.stringify({ ...d, noderoles }, null, 2));
    return 0;
  }
  const rows: [string, string][] = [
    ['deployment', d.name],
    ['state', `${d.state}${d.committed_at ? ` (last committed ${d.committed_at})` : ''}`],
    ['description', d.description || '-'],
    ['nodes', String(d.nodes)],
  ];
  out(rows.map(([k, v]) => `${k.padEnd(12)}${v}`).join('\n'));
  out(`\n${renderTree(d.path, d.tree)}`);
  if (d.roles.length > 0) out(`\n${table(['ROLE', 'ATTRIBUTES'], d.roles.map((r) => [r.role, attrsText(r.attributes)]))}`);
  if (noderoles.length > 0) out(`\n${noderoleTable(noderoles)}`);
  out(`\nnoderoles: ${countsText(d.noderole_counts)}`);
  return 0;
}

/** `nodectl deployments VERB ...`. */
export async function deploymentsCommand(api: ApiClient, verb: string | undefined, args: string[], flags: DeploymentFlags, out: Out): Promise<number> {
  const [name, role, ...rest] = args;
  const print = (body: unknown, text: string) => out(flags.json ? JSON.stringify(body, null, 2) : text);
  switch (verb) {
    case 'create': {
      if (args.length !== 1) usage('deployments create NAME [--parent P] [--description D]');
      const body = { name, ...(flags.parent === undefined ? {} : { parent: flags.parent }), ...(flags.description === undefined ? {} : { description: flags.description }) };
      const d = await api.request<Deployment>('POST', '/api/v1/deployments', body);
      print(d, `deployment ${d.name} created under ${d.parent} (${d.state})`);
      return 0;
    }
    case 'list': {
      if (args.length !== 0) usage('deployments list [--parent P] [--state S]');
      const list = await api.list<Deployment>(`/api/v1/deployments${query({ parent: flags.parent, state: flags.state })}`, { max: flags.limit });
      print(list, table(['NAME', 'PARENT', 'STATE', 'NODES', 'NODEROLES'], list.map((d) => [d.name, d.parent, d.state, d.nodes, countsText(d.noderole_counts)])));
      return 0;
    }
    case 'show':
      if (args.length !== 1) usage('deployments show NAME');
      return showDeployment(api, name!, flags, out);
    case 'add-role': {
      if (args.length !== 2) usage('deployments add-role NAME ROLE [--attr k=v]...');
      const added = await api.request('PUT', `${deploymentPath(name!)}/roles/${encodeURIComponent(role!)}`, { attributes: parseAttrs(flags.attr) });
      print(added, `${name}: role ${added.role}, attributes ${attrsText(added.attributes)}`);
      return 0;
    }
    case 'bind': {
      if (args.length < 3) usage('deployments bind NAME ROLE NODE... [--attr k=v]...');
      const attributes = flags.attr === undefined ? {} : { attributes: parseAttrs(flags.attr) };
      const bound = await api.request<{ noderoles: Noderole[] }>('POST', `${deploymentPath(name!)}/bind`, { role, nodes: rest, ...attributes });
      print(bound, `${noderoleTable(bound.noderoles)}\n${name}: ${role} bound to ${plural(rest.length, 'node')}${bound.noderoles.length > rest.length ? ` (${plural(bound.noderoles.length, 'noderole')}, required roles included)` : ''}`);
      return 0;
    }
    case 'unbind': {
      if (args.length < 3) usage('deployments unbind NAME ROLE NODE...');
      const removed = await api.request('POST', `${deploymentPath(name!)}/unbind`, { role, nodes: rest });
      print(removed, `${name}: ${role} unbound from ${plural(rest.length, 'node')} (${plural(removed.removed, 'noderole')} removed)`);
      return 0;
    }
    case 'move': {
      if (args.length < 2) usage('deployments move NAME NODE...');
      const moved = await api.request<{ moved: string[] }>('POST', `${deploymentPath(name!)}/nodes`, { nodes: args.slice(1) });
      print(moved, `${name}: moved ${moved.moved.length > 0 ? moved.moved.join(', ') : 'nothing'}`);
      return 0;
    }
    case 'propose': {
      if (args.length !== 1) usage('deployments propose NAME');
      const d = await api.request<Deployment>('POST', `${deploymentPath(name!)}/propose`);
      print(d, `${d.name}: ${d.state}`);
      return 0;
    }
    case 'commit': {
      if (args.length !== 1) usage('deployments commit NAME [--wait]');
      const started = await api.request('POST', `${deploymentPath(name!)}/commit`);
      if (!flags.wait) {
        print(started, `${name}: committed, ${plural(started.noderoles, 'noderole')} to run (task ${started.task_id})`);
        return 0;
      }
      return followAnneal(api, started.task_id, `commit of ${name}`, flags, out);
    }
    case 'delete':
      if (args.length !== 1) usage('deployments delete NAME');
      await api.request('DELETE', deploymentPath(name!));
      print({ deleted: name }, `deployment ${name} deleted`);
      return 0;
    default:
      throw new CliError(`unknown command: deployments ${verb ?? ''}\n\n${DEPLOYMENTS_USAGE}`, 2);
  }
}

function showNoderole(n: Noderole, json: boolean, out: Out): void {
  if (json) {
    out(JSON.stringify(n, null, 2));
    return;
  }
  const rows: [string, string][] = [
    ['noderole', String(n.id)],
    ['deployment', n.deployment],
    ['node', n.node],
    ['role', n.role],
    ['state', n.state],
    ['requires', n.requires.length > 0 ? n.requires.join(', ') : '-'],
    ['attributes', attrsText(n.attributes)],
    ['effective', attrsText(n.effective_attributes)],
    ['error', n.error ?? '-'],
    ['task', n.task_id ?? '-'],
    ['started', n.started_at ?? '-'],
    ['finished', n.finished_at ?? '-'],
  ];
  if (n.result) rows.push(['exit code', String(n.result.exit_code ?? '-')]);
  out(rows.map(([k, v]) => `${k.padEnd(12)}${v}`).join('\n'));
  if (n.result?.stdout) out(`stdout (tail):\n${n.result.stdout.trimEnd()}`);
  if (n.result?.stderr) out(`stderr (tail):\n${n.result.stderr.trimEnd()}`);
}

/** `nodectl noderoles VERB ...`. */
export async function noderolesCommand(api: ApiClient, verb: string | undefined, args: string[], flags: DeploymentFlags, out: Out): Promise<number> {
  const id = args[0]!;
  switch (verb) {
    case 'list': {
      if (args.length !== 0) usage('noderoles list [--deployment D] [--node N] [--role R] [--state S]');
      const list = await api.list<Noderole>(`/api/v1/noderoles${query({ deployment: flags.deployment, node: flags.node, role: flags.role, state: flags.state })}`, { max: flags.limit });
      out(flags.json ? JSON.stringify(list, null, 2) : table(['ID', 'DEPLOYMENT', 'NODE', 'ROLE', 'STATE', 'ERROR'], list.map((n) => [n.id, n.deployment, n.node, n.role, n.state, n.error])));
      return 0;
    }
    case 'show':
      if (args.length !== 1) usage('noderoles show ID');
      showNoderole(await api.request<Noderole>('GET', noderolePath(id)), flags.json, out);
      return 0;
    case 'set': {
      if (args.length !== 1 || (flags.attr === undefined && flags.unset === undefined)) usage('noderoles set ID --attr k=v... [--unset KEY]...');
      const change = parseAttrs(flags.attr);
      // The noderole's own attributes are sent whole: the keys not named stay as they are.
      const current = await api.request<Noderole>('GET', noderolePath(id));
      const attributes = { ...current.attributes, ...change };
      for (const key of flags.unset ?? []) delete attributes[key];
      showNoderole(await api.request<Noderole>('PATCH', noderolePath(id), { attributes }), flags.json, out);
      return 0;
    }
    case 'retry': {
      if (args.length !== 1) usage('noderoles retry ID [--wait]');
      const started = await api.request('POST', `${noderolePath(id)}/retry`);
      if (!flags.wait) {
        out(flags.json ? JSON.stringify(started, null, 2) : `noderole ${id}: ${plural(started.noderoles, 'noderole')} back in todo (task ${started.task_id})`);
        return 0;
      }
      return followAnneal(api, started.task_id, `retry of noderole ${id}`, flags, out);
    }
    default:
      throw new CliError(`unknown command: noderoles ${verb ?? ''}\n\n${DEPLOYMENTS_USAGE}`, 2);
  }
}
