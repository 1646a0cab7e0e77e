import { z } from 'zod';

/**
 * What the server sends `nodeagent join` on its stdin, over the verified SSH channel (Ganeti's
 * node-daemon-setup JSON). Imported by both sides, so the agent checks exactly what the server writes.
 */
export const joinDocumentSchema = z.strictObject({
  cluster_name: z.string().min(1).max(253),
  server_url: z.url({ protocol: /^https?$/ }),
  server_fingerprint: z.string().regex(/^SHA256:[A-Za-z0-9+/]{43}$/),
  /** The node's host name when the operator gave one; else the node's own. */
  hostname: z.string().min(1).max(253).optional(),
  start_agent: z.boolean(),
  /** Where the agent serves the server: HOST:PORT. */
  agent_listen: z.string().min(3).max(300),
  /** The host the server reaches the agent at: the address it reached the node over SSH. */
  advertise: z.string().min(1).max(253),
  /** Tests and demos: every file under this directory, services simulated (the agent's --sandbox). */
  sandbox: z.string().startsWith('/').optional(),
  extra_vars: z.record(z.string(), z.unknown()).optional(),
});
export type JoinDocument = z.infer<typeof joinDocumentSchema>;

/** The one JSON line `nodeagent join` prints when it exits 0. */
export interface JoinAnswer {
  status: 'joined' | 'already_member';
  hostname: string;
  fingerprint: string;
  /** started: by this join; running / not_running: found so by an already_member answer; not_started: start_agent was false. */
  agent: 'started' | 'running' | 'not_running' | 'not_started';
}

/** Exit codes of `nodeagent join`: the server tells refusals apart from failures by them. */
export const JOIN_EXIT = {
  ok: 0,
  failed: 1,
  badDocument: 2,
  /** The node holds another cluster's name or server key (or another host name): nothing was written. */
  otherCluster: 3,
} as const;
