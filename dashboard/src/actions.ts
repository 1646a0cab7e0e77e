import { api } from './api';
import type { Accepted } from './types';

/** The operator verbs the dashboard runs on one node, each by the REST call that the README lists for it. */
export const NODE_VERBS: Record<string, { label: string; explain: string; run: (hostname: string) => Promise<Accepted> }> = {
  reinitialize: {
    label: 'Reinitialize',
    explain: 'runs a fresh initialization window (ping, facts, monitoring, services)',
    run: (h) => api('POST', `/api/v1/nodes/${encodeURIComponent(h)}/actions`, { action: 'reinitialize' }),
  },
  commission: {
    label: 'Commission',
    explain: "runs the node's commission steps",
    run: (h) => bulk('commission', [h]),
  },
  decommission: {
    label: 'Decommission',
    explain: "runs the node's decommission steps (best effort)",
    run: (h) => bulk('decommission', [h]),
  },
  maintenance: {
    label: 'Maintenance',
    explain: 'takes the node out of scheduling and silences its monitoring',
    run: (h) => bulk('maintenance', [h]),
  },
  manage: {
    label: 'Manage',
    explain: 'validates the power interface against the BMC',
    run: (h) => provision(h, 'manage'),
  },
  adopt: {
    label: 'Adopt',
    explain: 'validates the boot interface, then takes the node over without touching it',
    run: (h) => provision(h, 'adopt'),
  },
  abort: {
    label: 'Abort install',
    explain: 'stops the install: boot set back to local, DHCP entry disabled, power off',
    run: (h) => provision(h, 'abort'),
  },
};

/** The bulk operations a selection of nodes can be given. */
export const BULK_KINDS = ['commission', 'decommission', 'maintenance'] as const;

export function bulk(kind: string, nodes: string[]): Promise<Accepted> {
  return api('POST', `/api/v1/${kind}/nodes`, { nodes });
}

export function provision(hostname: string, target: string): Promise<Accepted> {
  return api('PUT', `/api/v1/nodes/${encodeURIComponent(hostname)}/states/provision`, { target });
}

export const POWER_TARGETS = ['power on', 'power off', 'rebooting'] as const;

export function power(hostname: string, target: string): Promise<Accepted> {
  return api('PUT', `/api/v1/nodes/${encodeURIComponent(hostname)}/states/power`, { target });
}

export function accept(hostname: string, fingerprint: string): Promise<Accepted> {
  return api('POST', `/api/v1/unmanaged_nodes/${encodeURIComponent(hostname)}/accept`, { hostname, fingerprint });
}
