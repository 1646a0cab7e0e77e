import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiClient, CliError, resolveConnection } from './client';
import { progressLine, table, type Progress } from './render';

const USAGE = `nodectl: drive the node lifecycle service

  nodectl nodes get [NAME...]                                  nodes and their states (all when none named)
  nodectl nodes unmanaged                                      announced nodes waiting to be accepted
  nodectl nodes accept NAME --fingerprint SHA256:... [--wait]  accept a node by its key fingerprint
  nodectl nodes reinitialize NAME [--wait]                     retry initialization of a failed node
  nodectl nodes commission|decommission|maintenance [--extra-vars JSON] [--no-wait] NAME...
  nodectl tasks get ID

flags: --server URL (NODECTL_SERVER)  --token TOKEN (NODECTL_TOKEN)  --data-dir DIR (DATA_DIR)  --json
Without flags or environment, the URL and token come from DATA_DIR (default ./.data), as npm start leaves them.
Exit status: 0 done, 1 failed (a failed task, or a node that reports an error), 2 usage.`;

interface Options {
  json: boolean;
  wait: boolean;
  fingerprint?: string;
  extraVars?: string;
}

type Out = (text: string) => void;

async function main(argv: string[], out: Out): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      server: { type: 'string' },
      token: { type: 'string' },
      'data-dir': { type: 'string' },
      json: { type: 'boolean', default: false },
      wait: { type: 'boolean', default: false },
      'no-wait': { type: 'boolean', default: false },
      fingerprint: { type: 'string' },
      'extra-vars': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [noun, verb, ...names] = positionals;
  if (values.help || !noun) {
    out(USAGE);
    return values.help ? 0 : 2;
  }
  const api = new ApiClient(resolveConnection({ server: values.server, token: values.token, dataDir: values['data-dir'] }));
  const options: Options = { json: values.json, wait: values.wait, fingerprint: values.fingerprint, extraVars: values['extra-vars'] };

  if (noun === 'tasks' && verb === 'get' && names.length === 1) return showTask(api, names[0]!, options, out);
  if (noun !== 'nodes') throw new CliError(`unknown command: ${positionals.join(' ')}\n\n${USAGE}`, 2);
  switch (verb) {
    case 'get':
      return getNodes(api, names, options, out);
    case 'unmanaged':
      return listUnmanaged(api, options, out);
    case 'accept':
      if (names.length !== 1 || !options.fingerprint) throw new CliError('usage: nodectl nodes accept NAME --fingerprint SHA256:...', 2);
      return accept(api, names[0]!, options, out);
    case 'reinitialize':
      if (names.length !== 1) throw new CliError('usage: nodectl nodes reinitialize NAME', 2);
      return reinitialize(api, names[0]!, options, out);
    case 'commission':
    case 'decommission':
    case 'maintenance':
      if (names.length === 0) throw new CliError(`usage: nodectl nodes ${verb} [--extra-vars JSON] NAME...`, 2);
      return bulk(api, verb, names, { ...options, wait: !values['no-wait'] }, out);
    default:
      throw new CliError(`unknown command: ${positionals.join(' ')}\n\n${USAGE}`, 2);
  }
}

async function getNodes(api: ApiClient, names: string[], options: Options, out: Out): Promise<number> {
  const query = names.length > 0 ? `?nodes=${encodeURIComponent(names.join(','))}` : '';
  const nodes = await api.request<any[]>('GET', `/api/v1/info/nodes${query}`);
  if (options.json) out(JSON.stringify(nodes, null, 2));
  else out(table(['HOSTNAME', 'STATE', 'REACHABLE', 'ADDRESS', 'LAST ERROR'], nodes.map((n) => [n.hostname, n.state, n.reachable ? 'yes' : 'no', n.address, n.last_error])));
  return 0;
}

async function listUnmanaged(api: ApiClient, options: Options, out: Out): Promise<number> {
  const nodes = await api.request<any[]>('GET', '/api/v1/unmanaged_nodes');
  if (options.json) out(JSON.stringify(nodes, null, 2));
  else out(table(['HOSTNAME', 'FINGERPRINT', 'ADDRESS', 'ANNOUNCED'], nodes.map((n) => [n.hostname, n.fingerprint, n.address, n.announced_at])));
  return 0;
}

async function accept(api: ApiClient, name: string, options: Options, out: Out): Promise<number> {
  const started = await api.request('POST', `/api/v1/unmanaged_nodes/${encodeURIComponent(name)}/accept`, { hostname: name, fingerprint: options.fingerprint });
  return followNodeTask(api, started.task_id, `${name} accepted`, options, out);
}

async function reinitialize(api: ApiClient, name: string, options: Options, out: Out): Promise<number> {
  const started = await api.request('POST', `/api/v1/nodes/${encodeURIComponent(name)}/actions`, { action: 'reinitialize' });
  return followNodeTask(api, started.task_id, `${name} re-initializing`, options, out);
}

async function followNodeTask(api: ApiClient, taskId: string, what: string, options: Options, out: Out): Promise<number> {
  if (!options.wait) {
    out(options.json ? JSON.stringify({ task_id: taskId }) : `${what}: task ${taskId}`);
    return 0;
  }
  const task = await waitForTask(api, taskId, () => undefined);
  out(options.json ? JSON.stringify(task, null, 2) : `${what}: task ${taskId} ${task.status}${task.error ? `: ${task.error}` : ''}`);
  return task.status === 'succeeded' ? 0 : 1;
}

async function bulk(api: ApiClient, kind: string, names: string[], options: Options, out: Out): Promise<number> {
  let extraVars: unknown;
  if (options.extraVars !== undefined) {
    try {
      extraVars = JSON.parse(options.extraVars);
    } catch {
      throw new CliError(`--extra-vars is not JSON: ${options.extraVars}`, 2);
    }
  }
  const started = await api.request('POST', `/api/v1/${kind}/nodes`, { nodes: names, ...(extraVars === undefined ? {} : { extra_vars: extraVars }) });
  if (!options.wait) {
    out(options.json ? JSON.stringify(started) : `${kind} of ${names.length} node(s): task ${started.task_id}`);
    return 0;
  }
  const bar = progressBar(options.json);
  const task = await waitForTask(api, started.task_id, bar.update);
  bar.finish();
  const failedNodes = task.nodes.filter((n: { status: string; error: string | null }) => n.status === 'failed' || n.error);
  if (options.json) out(JSON.stringify(task, null, 2));
  else {
    out(table(['NODE', 'RESULT', 'ERROR'], task.nodes.map((n: any) => [n.hostname, n.status, n.error])));
    out(`${kind} ${task.status}: ${task.progress.succeeded} succeeded, ${task.progress.failed} failed (task ${task.id})`);
  }
  return task.status === 'succeeded' && failedNodes.length === 0 ? 0 : 1;
}

async function waitForTask(api: ApiClient, taskId: string, onProgress: (p: Progress) => void): Promise<any> {
  for (;;) {
    const task = await api.request('GET', `/api/v1/tasks/${taskId}`);
    if (task.progress) onProgress(task.progress);
    if (task.status === 'succeeded' || task.status === 'failed') return task;
    await sleep(300);
  }
}

/** A bar redrawn in place on a terminal; on a pipe, a line whenever progress changes. */
function progressBar(silent: boolean) {
  const tty = process.stderr.isTTY;
  let last = '';
  return {
    update(p: Progress) {
      if (silent) return;
      const line = progressLine(p);
      if (line === last) return;
      last = line;
      process.stderr.write(tty ? `\r${line}` : `${line}\n`);
    },
    finish() {
      if (!silent && tty && last) process.stderr.write('\n');
    },
  };
}

async function showTask(api: ApiClient, id: string, options: Options, out: Out): Promise<number> {
  const task = await api.request('GET', `/api/v1/tasks/${encodeURIComponent(id)}`);
  if (options.json) out(JSON.stringify(task, null, 2));
  else {
    out(table(['TASK', 'KIND', 'STATUS', 'NODE', 'ERROR'], [[task.id, task.kind, task.status, task.hostname ?? `${task.progress?.total ?? 0} nodes`, task.error]]));
    if (task.nodes) out(`\n${table(['NODE', 'RESULT', 'ERROR'], task.nodes.map((n: any) => [n.hostname, n.status, n.error]))}`);
  }
  return task.status === 'failed' ? 1 : 0;
}

main(process.argv.slice(2), (text) => console.log(text)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof CliError) {
      console.error(`nodectl: ${err.message}`);
      process.exit(err.exitCode);
    }
    if ((err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      console.error(`nodectl: ${(err as Error).message}\n\n${USAGE}`);
      process.exit(2);
    }
    console.error(`nodectl: ${(err as Error).stack}`);
    process.exit(1);
  },
);
