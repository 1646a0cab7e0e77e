import http from 'node:http';
import { ApplicationFailure } from '@temporalio/common';
import type { Identity } from './identity/identity';
import { connectPinned } from './identity/pinned-tls';
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

/** Calls a node agent over HTTPS: our client certificate identifies the server, the agent's key is pinned. */
export class AgentClient {
  constructor(
    private readonly serverIdentity: Identity,
    private readonly timeoutMs: number,
  ) {}

  async call<T>(node: AgentEndpoint, method: 'GET' | 'POST', path: string, payload?: unknown): Promise<T> {
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
              reject(new Error(`agent ${node.hostname} answered ${res.statusCode} with a body that is not JSON`));
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
      req.on('timeout', () => req.destroy(new Error(`agent ${node.hostname} did not answer ${path} within ${this.timeoutMs} ms`)));
      req.on('error', reject);
      req.end(body);
    }).finally(() => socket.destroy());
  }
}
