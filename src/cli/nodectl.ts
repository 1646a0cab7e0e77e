import { parseArgs } from 'node:util';
import { ApiClient, CliError, parseExtraVars, parseLimit, resolveConnection } from './client';
import { ACCEPT_FROM_FILE_USAGE, acceptFromFile } from './accept-commands';
import { abortDeploy, DEPLOY_USAGE, deployNodes, rebuildNode } from './deploy-commands';
import { imagesCommand, IMAGES_USAGE } from './image-commands';
import { table } from './render';
import { progressBar, waitForTask } from './task-watch';
import { discoverNodes, DISCOVER_USAGE, sshCommand, SSH_USAGE } from './discover-commands';
import { DEPLOYMENT_OPTIONS, deploymentsCommand, DEPLOYMENTS_USAGE, noderolesCommand } from './deployment-commands';
import { ATTR_HELP, ROLE_OPTIONS, rolesCommand, ROLES_USAGE } from './role-commands';

const USAGE = `nodectl: drive the node lifecycle service

  nodectl nodes get [NAME...] [--limit N]                      nodes and their states (all when none named)
  nodectl nodes unmanaged [--limit N]                          announced nodes waiting to be accepted
  nodectl nodes accept NAME --fingerprint SHA256:... [--wait]  accept a node by its key fingerprint
${ACCEPT_FROM_FILE_USAGE}
  nodectl nodes reinitialize NAME [--wait]                     retry initialization of a failed node
  nodectl nodes commission|decommission|maintenance [--extra-vars JSON] [--no-wait] NAME...
  nodectl nodes create NAME --driver ipmi|agent --driver-info k=v... [--instance-info k=v...] [--port MAC...]
  nodectl nodes set NAME [--driver-info k=v...] [--instance-info k=v...]   (k= removes a key)
  nodectl nodes manage|adopt NAME [--wait]                     Ironic's provision verbs
  nodectl nodes power NAME on|off|reboot [--wait]              read with: nodectl nodes power NAME
  nodectl nodes delete NAME                                    only in enroll, manageable or adopt failed
${DEPLOY_USAGE}
${DISCOVER_USAGE}
${IMAGES_USAGE}
${SSH_USAGE}
${DEPLOYMENTS_USAGE}
${ROLES_USAGE}
  nodectl tasks get ID
  nodectl tasks list [--limit N]                               tasks, newest first
  nodectl events list [--limit N]                              cluster events, newest first

flags: --server URL (NODECTL_SERVER)  --token TOKEN (NODECTL_TOKEN)  --data-dir DIR (DATA_DIR)  --json
Lists are fetched page by page until the end; --limit N stops after N entries.
${ATTR_HELP}
Without flags or environment, the URL and token come from DATA_DIR (default ./.data), as npm start leaves them.
Exit status: 0 done, 1 failed (a failed task, or a node that reports an error), 2 usage.`;

interface Options {
  json: boolean;
  wait: boolean;
  fingerprint?: string;
  extraVars?: string;
  /** --limit: at most this many entries of a list (default: all, page by page). */
  limit?: number;
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
      'from-file': { type: 'string' },
      'extra-vars': { type: 'string' },
      limit: { type: 'string' },
      driver: { type: 'string' },
      'driver-info': { type: 'string', multiple: true },
      'instance-info': { type: 'string', multiple: true },
      port: { type: 'string', multiple: true },
      image: { type: 'string' },
      kernel: { type: 'string' },
      initrd: { type: 'string' },
      disk: { type: 'string' },
      sha256: { type: 'string' },
      user: { type: 'string' },
      'host-key': { type: 'string', multiple: true },
      hostname: { type: 'string', multiple: true },
      tofu: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' },
      ...ROLE_OPTIONS,
      ...DEPLOYMENT_OPTIONS,
    },
  });
  const [noun, verb, ...names] = positionals;
  if (values.help || !noun) {
    out(USAGE);
    return values.help ? 0 : 2;
  }
  const api = new ApiClient(resolveConnection({ server: values.server, token: values.token, dataDir: values['data-dir'] }));
  const options: Options = { json: values.json, wait: values.wait, fingerprint: values.fingerprint, extraVars: values['extra-vars'], limit: parseLimit(values.limit) };

  if (noun === 'tasks' && verb === 'get' && names.length === 1) return showTask(api, names[0]!, options, out);
  if (noun === 'tasks' && verb === 'list' && names.length === 0) return listTasks(api, options, out);
  if (noun === 'events' && verb === 'list' && names.length === 0) return listEvents(api, options, out);
  if (noun === 'images') return imagesCommand(api, verb, names, { json: values.json, kernel: values.kernel, initrd: values.initrd, disk: values.disk, sha256: values.sha256 }, out);
  if (noun === 'ssh') return sshCommand(api, verb, names, { json: values.json }, out);
  if (noun === 'deployments') return deploymentsCommand(api, verb, names, { ...values, limit: options.limit }, out);
  if (noun === 'noderoles') return noderolesCommand(api, verb, names, { ...values, limit: options.limit }, out);
  if (noun === 'roles') return rolesCommand(api, verb, names, values, out);
  if (noun === 'nodes' && verb === 'discover') {
    return discoverNodes(
      api,
      names,
      { json: values.json, wait: values.wait, user: values.user, hostKeys: values['host-key'] ?? [], hostnames: values.hostname ?? [], tofu: values.tofu, extraVars: values['extra-vars'] },
      out,
    );
  }
  if (noun !== 'nodes') throw new CliError(`unknown command: ${positionals.join(' ')}\n\n${USAGE}`, 2);
  switch (verb) {
    case 'get':
      return getNodes(api, names, options, out);
    case 'unmanaged':
      return listUnmanaged(api, options, out);
    case 'accept':
      if (values['from-file'] !== undefined && names.length === 0 && !options.fingerprint) {
        return acceptFromFile(api, values['from-file'], { json: values.json, wait: !values['no-wait'] }, out);
      }
      if (names.length !== 1 || !options.fingerprint) throw new CliError('usage: nodectl nodes accept NAME --fingerprint SHA256:... | nodectl nodes accept --from-file FILE|-', 2);
      return accept(api, names[0]!, options, out);
    case 'reinitialize':
      if (names.length !== 1) throw new CliError('usage: nodectl nodes reinitialize NAME', 2);
      return reinitialize(api, names[0]!, options, out);
    case 'create':
      if (names.length !== 1 || !values.driver) throw new CliError('usage: nodectl nodes create NAME --driver DRIVER --driver-info k=v ... [--port MAC]', 2);
      return create(api, names[0]!, values.driver, values['driver-info'] ?? [], values['instance-info'] ?? [], values.port ?? [], options, out);
    case 'set':
      if (names.length !== 1) throw new CliError('usage: nodectl nodes set NAME [--driver-info k=v ...] [--instance-info k=v ...]', 2);
      return setInfo(api, names[0]!, values['driver-info'] ?? [], values['instance-info'] ?? [], options, out);
    case 'manage':
    case 'adopt':
      if (names.length !== 1) throw new CliError(`usage: nodectl nodes ${verb} NAME [--wait]`, 2);
      return provision(api, names[0]!, verb, options, out);
    case 'delete':
      if (names.length !== 1) throw new CliError('usage: nodectl nodes delete NAME', 2);
      await api.request('DELETE', `/api/v1/nodes/${encodeURIComponent(names[0]!)}`);
      out(`${names[0]} deleted`);
      return 0;
    case 'power':
      return power(api, names, options, out);
    case 'deploy':
      return deployNodes(api, names, { ...options, image: values.image }, out);
    case 'rebuild':
      return rebuildNode(api, names, { ...options, image: values.image }, out);
    case 'abort':
      return abortDeploy(api, names, options, out);
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
  const nodes = await api.list<any>(`/api/v1/info/nodes${query}`, { max: options.limit });
  if (options.json) out(JSON.stringify(nodes, null, 2));
  else out(table(['HOSTNAME', 'STATE', 'REACHABLE', 'ADDRESS', 'LAST ERROR'], nodes.map((n) => [n.hostname, n.state, n.reachable ? 'yes' : 'no', n.address, n.last_error])));
  return 0;
}

async function listUnmanaged(api: ApiClient, options: Options, out: Out): Promise<number> {
  const nodes = await api.list<any>('/api/v1/unmanaged_nodes', { max: options.limit });
  if (options.json) out(JSON.stringify(nodes, null, 2));
  else {
    out(table(['HOSTNAME', 'FINGERPRINT', 'ADDRESS', 'ANNOUNCED', 'CLAIMS'], nodes.map((n) => [n.hostname, n.fingerprint, n.address, n.announced_at, claimsCell(n)])));
    const contested = [...new Set(nodes.filter((n) => n.conflict).map((n) => n.hostname as string))];
    if (contested.length > 0) {
      out(`\nwarning: more than one key claims ${contested.join(', ')}; accept only the fingerprint the node's own agent prints, the others will be rejected`);
    }
  }
  return 0;
}

function claimsCell(n: { claims?: number; conflict?: boolean }): string {
  return n.conflict ? `${n.claims} (conflict)` : String(n.claims ?? 1);
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
  const extraVars = parseExtraVars(options.extraVars);
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

/** k=v pairs into an object; `k=` asks to remove k (sent as null). */
function pairs(items: string[], flag: string): Record<string, string | null> {
  const result: Record<string, string | null> = {};
  for (const item of items) {
    const at = item.indexOf('=');
    if (at <= 0) throw new CliError(`--${flag} takes key=value, got ${JSON.stringify(item)}`, 2);
    const value = item.slice(at + 1);
    result[item.slice(0, at)] = value === '' ? null : value;
  }
  return result;
}

function showNode(node: any, options: Options, out: Out): void {
  if (options.json) out(JSON.stringify(node, null, 2));
  else
    out(
      table(
        ['NAME', 'STATE', 'DRIVER', 'POWER', 'LAST ERROR'],
        [[node.hostname, node.state, node.driver, node.power_state, node.last_error]],
      ),
    );
}

async function create(api: ApiClient, name: string, driver: string, driverInfo: string[], instanceInfo: string[], ports: string[], options: Options, out: Out) {
  const node = await api.request('POST', '/api/v1/nodes', {
    name,
    driver,
    driver_info: pairs(driverInfo, 'driver-info'),
    ...(instanceInfo.length > 0 ? { instance_info: pairs(instanceInfo, 'instance-info') } : {}),
    ports: ports.map((address) => ({ address })),
  });
  showNode(node, options, out);
  return 0;
}

async function setInfo(api: ApiClient, name: string, driverInfo: string[], instanceInfo: string[], options: Options, out: Out) {
  const body: Record<string, unknown> = {};
  if (driverInfo.length > 0) body.driver_info = pairs(driverInfo, 'driver-info');
  if (instanceInfo.length > 0) body.instance_info = pairs(instanceInfo, 'instance-info');
  showNode(await api.request('PATCH', `/api/v1/nodes/${encodeURIComponent(name)}`, body), options, out);
  return 0;
}

async function provision(api: ApiClient, name: string, verb: string, options: Options, out: Out): Promise<number> {
  const started = await api.request('PUT', `/api/v1/nodes/${encodeURIComponent(name)}/states/provision`, { target: verb });
  if (!options.wait) {
    out(options.json ? JSON.stringify(started) : `${name}: ${verb} started (task ${started.task_id})`);
    return 0;
  }
  const task = await waitForTask(api, started.task_id, () => undefined);
  const node = await api.request('GET', `/api/v1/nodes/${encodeURIComponent(name)}`);
  if (options.json) out(JSON.stringify(node, null, 2));
  else out(`${name}: ${verb} ${task.status}; now ${node.state}${node.last_error ? ` (last_error: ${node.last_error})` : ''}`);
  return task.status === 'succeeded' ? 0 : 1;
}

async function power(api: ApiClient, args: string[], options: Options, out: Out): Promise<number> {
  const [name, target] = args;
  const targets: Record<string, string> = { on: 'power on', off: 'power off', reboot: 'rebooting' };
  if (!name || args.length > 2 || (target && !targets[target])) throw new CliError('usage: nodectl nodes power NAME [on|off|reboot]', 2);
  const path = `/api/v1/nodes/${encodeURIComponent(name)}/states/power`;
  if (!target) {
    const state = await api.request('GET', path);
    out(options.json ? JSON.stringify(state, null, 2) : table(['NAME', 'POWER', 'ENFORCED', 'FAULT', 'SOURCE'], [[name, state.power_state, state.enforced_power_state, state.power_fault ? 'yes' : 'no', state.source]]));
    return 0;
  }
  const started = await api.request('PUT', path, { target: targets[target] });
  return followNodeTask(api, started.task_id, `${name}: ${targets[target]}`, options, out);
}

async function showTask(api: ApiClient, id: string, options: Options, out: Out): Promise<number> {
  const task = await api.request('GET', `/api/v1/tasks/${encodeURIComponent(id)}`);
  if (options.json) out(JSON.stringify(task, null, 2));
  else {
    const scope = task.hostname ?? `${task.progress?.total ?? 0} ${task.kind === 'anneal' ? 'noderoles' : 'nodes'}`;
    out(table(['TASK', 'KIND', 'STATUS', 'NODE', 'ERROR'], [[task.id, task.kind, task.status, scope, task.error]]));
    if (task.nodes) out(`\n${table(['NODE', 'RESULT', 'ERROR'], task.nodes.map((n: any) => [n.hostname, n.status, n.error]))}`);
    // A deployment's commit or retry: its noderoles, as `deployments show` lists them.
    if (task.noderoles) out(`\n${table(['ID', 'NODE', 'ROLE', 'STATE', 'ERROR'], task.noderoles.map((n: any) => [n.id, n.node, n.role, n.state, n.error]))}`);
  }
  return task.status === 'failed' ? 1 : 0;
}

async function listTasks(api: ApiClient, options: Options, out: Out): Promise<number> {
  const tasks = await api.list<any>('/api/v1/tasks', { max: options.limit });
  if (options.json) out(JSON.stringify(tasks, null, 2));
  else out(table(['TASK', 'KIND', 'STATUS', 'NODE', 'CREATED', 'ERROR'], tasks.map((t) => [t.id, t.kind, t.status, t.hostname ?? '(bulk)', t.created_at, t.error])));
  return 0;
}

async function listEvents(api: ApiClient, options: Options, out: Out): Promise<number> {
  const events = await api.list<any>('/api/v1/events', { max: options.limit });
  if (options.json) out(JSON.stringify(events, null, 2));
  else out(table(['ID', 'TYPE', 'AT', 'NODES'], events.map((e) => [e.id, e.type, e.at, e.nodes.join(',')])));
  return 0;
}

/** Exits once stdout has been written out: to a pipe it is asynchronous, and a long list would be cut. */
function exitAfterOutput(code: number): void {
  process.stdout.write('', () => process.exit(code));
}

main(process.argv.slice(2), (text) => console.log(text)).then(
  (code) => exitAfterOutput(code),
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
