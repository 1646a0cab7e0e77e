import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import type { DiscoverConfig } from '../config';
import { ValidationFailed } from '../domain/errors';
import type { OperationService } from '../services/operation-service';
import { parseSshAddress, type SshAddress } from './address';
import { submitDiscovery } from './discoveries-repo';
import { parsePinnedHostKey, type PinnedHostKey } from './host-keys';

/** POST /api/v1/discover/nodes, after its shape was checked. */
export interface DiscoverRequest {
  addresses: string[];
  ssh?: { user?: string; host_keys?: Record<string, string>; host_key_policy?: 'pinned' | 'tofu' };
  /** The host name each address's node should take, when the operator names it. */
  hostnames?: Record<string, string>;
  extra_vars?: Record<string, unknown>;
}

/** contiv's discover/nodes: a list of addresses to bring under management, each joined over SSH. */
export class DiscoveryService {
  constructor(
    private readonly knex: Knex,
    private readonly operations: OperationService,
    private readonly config: DiscoverConfig,
  ) {}

  /**
   * Checks the request as a whole, naming every offender (nothing starts unless all is well), then queues
   * one discovery per address under one task and starts the request's workflow.
   */
  async submit(request: DiscoverRequest): Promise<{ taskId: string; addresses: number }> {
    const policy = request.ssh?.host_key_policy ?? 'pinned';
    const problems: { field: string; problem: string }[] = [];
    const byKey = new Map<string, { index: number; address: SshAddress }>();
    request.addresses.forEach((text, index) => {
      const parsed = parseSshAddress(text);
      if ('problem' in parsed) return problems.push({ field: `addresses[${index}]`, problem: `${JSON.stringify(text)} ${parsed.problem}` });
      const first = byKey.get(parsed.key);
      if (first) return problems.push({ field: `addresses[${index}]`, problem: `${JSON.stringify(text)} repeats addresses[${first.index}] (${parsed.key})` });
      byKey.set(parsed.key, { index, address: parsed });
    });
    if (request.addresses.length === 0) problems.push({ field: 'addresses', problem: 'must name at least one address' });

    /** Maps an operator-written address (any spelling) to the request's own; records a problem otherwise. */
    const ownKey = (field: string, text: string): string | undefined => {
      const parsed = parseSshAddress(text);
      if ('problem' in parsed) {
        problems.push({ field, problem: `${JSON.stringify(text)} ${parsed.problem}` });
        return undefined;
      }
      if (!byKey.has(parsed.key)) {
        problems.push({ field, problem: `names ${parsed.key}, which is not in addresses` });
        return undefined;
      }
      return parsed.key;
    };
    const pins = new Map<string, PinnedHostKey>();
    for (const [text, value] of Object.entries(request.ssh?.host_keys ?? {})) {
      const field = `ssh.host_keys[${JSON.stringify(text)}]`;
      const key = ownKey(field, text);
      const pinned = parsePinnedHostKey(value);
      if ('problem' in pinned) problems.push({ field, problem: `${JSON.stringify(value)} ${pinned.problem}` });
      else if (key) pins.set(key, pinned);
    }
    if (policy === 'pinned') {
      const unpinned = [...byKey.keys()].filter((key) => !pins.has(key));
      if (unpinned.length > 0) {
        problems.push({
          field: 'ssh.host_keys',
          problem: `has no key for ${unpinned.join(', ')} (host_key_policy is pinned; give each address its SHA256: fingerprint, or use tofu)`,
        });
      }
    }
    const hostnames = new Map<string, string>();
    for (const [text, hostname] of Object.entries(request.hostnames ?? {})) {
      const key = ownKey(`hostnames[${JSON.stringify(text)}]`, text);
      if (key) hostnames.set(key, hostname);
    }
    const named = new Map<string, string>();
    for (const [key, hostname] of hostnames) {
      const other = named.get(hostname);
      if (other) problems.push({ field: `hostnames[${JSON.stringify(key)}]`, problem: `gives ${hostname}, which ${other} is given too` });
      named.set(hostname, key);
    }
    if (problems.length > 0) throw new ValidationFailed(problems);

    const taskId = randomUUID();
    const user = request.ssh?.user ?? this.config.defaultUser;
    await submitDiscovery(this.knex, {
      taskId,
      policy,
      extraVars: request.extra_vars ?? {},
      addresses: [...byKey.keys()].map((address) => ({ address, user, pinned: pins.get(address) ?? null, hostname: hostnames.get(address) ?? null })),
    });
    await this.operations.start(taskId, 'discover');
    return { taskId, addresses: byKey.size };
  }
}
