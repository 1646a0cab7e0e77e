import http from 'node:http';
import { ApplicationFailure } from '@temporalio/common';
import type { Identity } from './identity/identity';
import { connectPinned, PinnedKeyMismatch } from './identity/pinned-tls';
import { log } from './log';
import { agentCallErrors } from './metrics/registry';
import { scrubUnstorable } from './storable-text';

export interface AgentEndpoint {
  hostname: string;
  address: string;
  fingerprint: string;
}

/** The agent side of a node record; a node enrolled by its BMC alone has none. */
export function agentEndpoint(node: { hostname: string; address: string | null; fingerprint: string | null }): AgentEndpoint {
  if (!node.address || !node.fingerprint) {
    throw ApplicationFailure.nonRetryable(`node ${node.hostname} runs no agent that this server accepted`, 'NoAgent');
  }
  return { hostname: node.hostname, address: node.address, fingerprint: node.fingerprint };
}

/** The agent answered, but refused or failed the operation. */
export class AgentOperationFailed extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'AgentOperationFailed';
  }
}

/** No answer within the deadline (the request; connectPinned has its own for the handshake). */
class AgentTimeout extends Error {}

/** The agent's answer was not JSON: something else listens there, or a proxy answered. */
class AgentBadResponse extends Error {}

/** Why a call to a node agent failed, in words an operator alerts on: a small fixed set of label values. */
export type AgentErrorKind =
  | 'timeout'
  | 'connection_refused'
  | 'unreachable'
  | 'connection_reset'
  | 'dns'
  | 'tls'
  | 'pinning_mismatch'
  | 'http_4xx'
  | 'http_5xx'
  | 'bad_response'
  | 'other';

const KIND_OF_CODE: Record<string, AgentErrorKind> = {
  ECONNREFUSED: 'connection_refused',
  EHOSTUNREACH: 'unreachable',
  ENETUNREACH: 'unreachable',
  EHOSTDOWN: 'unreachable',
  ECONNRESET: 'connection_reset',
  EPIPE: 'connection_reset',
  ECONNABORTED: 'connection_reset',
  ETIMEDOUT: 'timeout',
  ENOTFOUND: 'dns',
  EAI_AGAIN: 'dns',
};

export function agentErrorKind(err: unknown): AgentErrorKind {
  if (err instanceof AgentTimeout) return 'timeout';
  if (err instanceof PinnedKeyMismatch) return 'pinning_mismatch';
  if (err instanceof AgentOperationFailed) return err.status >= 500 ? 'http_5xx' : err.status >= 400 ? 'http_4xx' : 'bad_response';
  if (err instanceof AgentBadResponse) return 'bad_response';
  const code = String((err as NodeJS.ErrnoException | undefined)?.code ?? '');
  const byCode = KIND_OF_CODE[code];
  if (byCode) return byCode;
  if (/^ERR_(SSL|TLS)_/.test(code) || /CERT|SELF_SIGNED|UNABLE_TO_/.test(code)) return 'tls';
  const message = err instanceof Error ? err.message : '';
  // connectPinned's own deadline (src/identity/pinned-tls.ts) is a plain Error that names it.
  if (/^TLS connect to .* timed out$/.test(message)) return 'timeout';
  if (/secure TLS connection|SSL|TLS/.test(message)) return 'tls';
  return 'other';
}

/** Calls a node agent over HTTPS: our client certificate identifies the server, the agent's key is pinned. */
export class AgentClient {
  constructor(
    private readonly serverIdentity: Identity,
    private readonly timeoutMs: number,
  ) {}

  /** Every failure is counted by kind (node_lifecycle_agent_call_errors_total) and logged at debug with the node. */
  async call<T>(node: AgentEndpoint, method: 'GET' | 'POST', path: string, payload?: unknown): Promise<T> {
    const started = performance.now();
    try {
      const answer = await this.exchange<T>(node, method, path, payload);
      log.debug('agent call', { hostname: node.hostname, method, path, ms: Math.round(performance.now() - started) });
      return answer;
    } catch (err) {
      const kind = agentErrorKind(err);
      agentCallErrors.inc({ kind });
      log.debug('agent call failed', { hostname: node.hostname, method, path, kind, error: (err as Error).message, ms: Math.round(performance.now() - started) });
      throw err;
    }
  }

  private async exchange<T>(node: AgentEndpoint, method: 'GET' | 'POST', path: string, payload?: unknown): Promise<T> {
    const url = new URL(node.address);
    const socket = await connectPinned({
      host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: Number(url.port || 443),
      fingerprint: node.fingerprint,
      cert: this.serverIdentity.certificatePem,
      key: this.serverIdentity.privateKeyPem,
      timeoutMs: this.timeoutMs,
    });
    const body = payload === undefined ? undefined : JSON.stringify(payload);
    return new Promise<T>((resolve, reject) => {
      const req = http.request(
        {
          method,
          path,
          host: url.hostname,
          headers: body ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } : {},
          createConnection: () => socket,
          timeout: this.timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: unknown;
            try {
              // What a node reports (facts, hook output) is stored: text PostgreSQL cannot hold is scrubbed here.
              parsed = scrubUnstorable(JSON.parse(text));
            } catch {
              reject(new AgentBadResponse(`agent ${node.hostname} answered ${res.statusCode} with a body that is not JSON`));
              return;
            }
            const status = res.statusCode ?? 0;
            if (status >= 200 && status < 300) resolve(parsed as T);
            else {
              const message = (parsed as { error?: { message?: string } }).error?.message ?? `status ${status}`;
              reject(new AgentOperationFailed(status, `agent ${node.hostname}: ${message}`));
            }
          });
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new AgentTimeout(`agent ${node.hostname} did not answer ${path} within ${this.timeoutMs} ms`)));
      req.on('error', reject);
      req.end(body);
    }).finally(() => socket.destroy());
  }
}
