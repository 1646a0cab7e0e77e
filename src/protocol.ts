/** The wire contract between the server and the node agent, in one place for both sides. */

/** Agent -> server (plain HTTP API, each request signed with the agent's key). */
export const SERVER_PATHS = {
  announce: '/api/v1/unmanaged_nodes',
  ready: '/api/v1/agent/ready',
} as const;

/** Server -> agent (HTTPS; the server presents its client certificate, each side pins the other's key). */
export const AGENT_PATHS = {
  ping: '/v1/ping',
  facts: '/v1/facts',
  monitoring: '/v1/monitoring',
  services: '/v1/services/start',
  reboot: '/v1/reboot',
  silence: '/v1/monitoring/silence',
  /** POST {hooks}/{commission|decommission|maintenance} with { operation_id, extra_vars }. */
  hooks: '/v1/hooks',
  /** POST {roles}/{role} with { operation_id, deployment, script, attributes, timeout_seconds }: a deployment's script role. */
  roles: '/v1/roles',
} as const;

export interface AnnounceRequest {
  hostname: string;
  fingerprint: string;
  public_key: string;
  /** https://host:port where the agent serves operations. */
  address: string;
}

export interface AnnounceResponse {
  hostname: string;
  state: string;
  accepted: boolean;
  server_fingerprint: string;
}

export interface PingResponse {
  hostname: string;
  fingerprint: string;
  uptime_seconds: number;
}
