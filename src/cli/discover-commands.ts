import type { ApiClient } from './client';
import { CliError, parseExtraVars } from './client';
import { table } from './render';
import { progressBar, waitForTask } from './task-watch';

export const DISCOVER_USAGE = `  nodectl nodes discover ADDR[:PORT]... [--user U] [--host-key ADDR=SHA256:...]... [--tofu]
                         [--hostname ADDR=NAME]... [--extra-vars JSON] [--wait]   add machines over SSH`;
export const SSH_USAGE = `  nodectl ssh public-key                                       the key to put in the machines' authorized_keys
  nodectl ssh known-hosts                                      host keys recorded on first contact (--tofu)
  nodectl ssh forget ADDR[:PORT]                               forget a recorded host key (a reinstalled host)`;

export interface DiscoverFlags {
  json: boolean;
  wait: boolean;
  user?: string;
  hostKeys: string[];
  hostnames: string[];
  tofu: boolean;
  extraVars?: string;
}

/** ADDR=VALUE, split at the last '=' before the value: an address never holds one, a fingerprint may end in one. */
function addressPairs(items: string[], flag: string): Record<string, string> {
  const result: Record<string, string> = {};
  for (const item of items) {
    const at = item.indexOf('=');
    if (at <= 0 || at === item.length - 1) throw new CliError(`--${flag} takes ADDR=VALUE, got ${JSON.stringify(item)}`, 2);
    result[item.slice(0, at)] = item.slice(at + 1);
  }
  return result;
}

/** POST /api/v1/discover/nodes; with --wait, a progress bar, then one row per address. Exit 1 when any failed. */
export async function discoverNodes(api: ApiClient, addresses: string[], flags: DiscoverFlags, out: (text: string) => void): Promise<number> {
  if (addresses.length === 0) throw new CliError(`usage:\n${DISCOVER_USAGE}`, 2);
  const extraVars = parseExtraVars(flags.extraVars);
  const hostKeys = addressPairs(flags.hostKeys, 'host-key');
  const hostnames = addressPairs(flags.hostnames, 'hostname');
  const started = await api.request('POST', '/api/v1/discover/nodes', {
    addresses,
    ssh: {
      ...(flags.user ? { user: flags.user } : {}),
      host_key_policy: flags.tofu ? 'tofu' : 'pinned',
      ...(Object.keys(hostKeys).length > 0 ? { host_keys: hostKeys } : {}),
    },
    ...(Object.keys(hostnames).length > 0 ? { hostnames } : {}),
    ...(extraVars === undefined ? {} : { extra_vars: extraVars }),
  });
  if (!flags.wait) {
    out(flags.json ? JSON.stringify(started) : `discover of ${started.addresses} address(es): task ${started.task_id}`);
    return 0;
  }
  const bar = progressBar(flags.json);
  const task = await waitForTask(api, started.task_id, bar.update);
  bar.finish();
  if (flags.json) out(JSON.stringify(task, null, 2));
  else {
    out(
      table(
        ['ADDRESS', 'NODE', 'RESULT', 'STEP', 'ERROR'],
        task.nodes.map((n: any) => [n.address, n.hostname, n.status === 'succeeded' ? (n.result?.outcome ?? n.status) : n.status, n.status === 'failed' ? n.step : null, n.error]),
      ),
    );
    out(`discover ${task.status}: ${task.progress.succeeded} joined or already members, ${task.progress.failed} failed (task ${task.id})`);
  }
  return task.status === 'succeeded' ? 0 : 1;
}

export async function sshCommand(api: ApiClient, verb: string | undefined, args: string[], flags: { json: boolean }, out: (text: string) => void): Promise<number> {
  switch (verb) {
    case 'public-key': {
      const key = await api.request('GET', '/api/v1/ssh/public_key');
      out(flags.json ? JSON.stringify(key) : key.public_key);
      return 0;
    }
    case 'known-hosts': {
      const hosts = await api.request('GET', '/api/v1/ssh/known_hosts?limit=1000');
      out(flags.json ? JSON.stringify(hosts, null, 2) : table(['ADDRESS', 'TYPE', 'FINGERPRINT', 'FIRST SEEN'], hosts.map((h: any) => [h.address, h.key_type, h.fingerprint, h.first_seen_at])));
      return 0;
    }
    case 'forget': {
      if (args.length !== 1) throw new CliError('usage: nodectl ssh forget ADDR[:PORT]', 2);
      await api.request('DELETE', `/api/v1/ssh/known_hosts/${encodeURIComponent(args[0]!)}`);
      out(`forgot the host key of ${args[0]}`);
      return 0;
    }
    default:
      throw new CliError(`usage:\n${SSH_USAGE}`, 2);
  }
}
