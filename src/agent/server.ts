import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Identity } from '../identity/identity';
import { peerFingerprint } from '../identity/pinned-tls';
import { AGENT_PATHS } from '../protocol';
import { HOOK_KINDS } from '../domain/states';
import { gatherFacts } from './facts';
import type { HookRunner } from './hooks';
import type { HostOperations } from './operations';

export interface OperationsContext {
  hostname: string;
  identity: Identity;
  operations: HostOperations;
  /** The server key this agent obeys; until it is known, every request is refused. */
  serverFingerprint(): string | undefined;
  /** Sandbox reboot: the agent goes away for a while and comes back. */
  simulateReboot(): void;
  sandboxed: boolean;
  hooks: HookRunner;
}

const HOOK_ROUTE = new RegExp(`^${AGENT_PATHS.hooks}/(${HOOK_KINDS.join('|')})$`);
const ROLE_ROUTE = new RegExp(`^${AGENT_PATHS.roles}/([a-z0-9][a-z0-9-]{0,62})$`);

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

async function readJson(req: http.IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  if (!text) return {};
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error();
    return value as Record<string, unknown>;
  } catch {
    throw new HttpError(400, 'body is not a JSON object');
  }
}

async function dispatch(ctx: OperationsContext, req: http.IncomingMessage): Promise<unknown> {
  const route = `${req.method} ${req.url}`;
  // Sandbox fault injection, as for hooks: slow/<op> delays the operation, fail/<op> fails it.
  const failIfInjected = async (op: string) => {
    const delay = await ctx.operations.injectedDelay(op);
    if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));
    const failure = await ctx.operations.injectedFailure(op);
    if (failure) throw new HttpError(500, failure);
  };
  switch (route) {
    case `GET ${AGENT_PATHS.ping}`:
      await failIfInjected('ping');
      return { hostname: ctx.hostname, fingerprint: ctx.identity.fingerprint, uptime_seconds: Math.round(process.uptime()) };
    case `GET ${AGENT_PATHS.facts}`:
      await failIfInjected('facts');
      return gatherFacts();
    case `POST ${AGENT_PATHS.monitoring}`: {
      const body = await readJson(req);
      if (typeof body.endpoint !== 'string' || !body.endpoint) throw new HttpError(400, 'endpoint must be a non-empty string');
      await failIfInjected('monitoring');
      return { config_file: await ctx.operations.configureMonitoring({ endpoint: body.endpoint, hostname: ctx.hostname }) };
    }
    case `POST ${AGENT_PATHS.services}`: {
      const body = await readJson(req);
      const services = body.services;
      if (!Array.isArray(services) || !services.every((s) => typeof s === 'string')) {
        throw new HttpError(400, 'services must be an array of names');
      }
      await failIfInjected('services');
      return { services: await ctx.operations.startServices(services as string[]) };
    }
    case `POST ${AGENT_PATHS.reboot}`:
      await failIfInjected('reboot');
      if (ctx.sandboxed) {
        // Answer first: the caller should learn that the reboot was accepted before the agent goes away.
        setImmediate(() => ctx.simulateReboot());
      } else {
        setImmediate(() => void ctx.operations.rebootHost());
      }
      return { rebooting: true };
    case `POST ${AGENT_PATHS.silence}`: {
      const body = await readJson(req);
      if (typeof body.silenced !== 'boolean') throw new HttpError(400, 'silenced must be true or false');
      await failIfInjected('silence');
      return { config_file: await ctx.operations.setMonitoringSilenced(body.silenced), silenced: body.silenced };
    }
    default: {
      const role = req.method === 'POST' ? ROLE_ROUTE.exec(req.url ?? '') : null;
      if (role) return runRole(ctx, role[1]!, await readJson(req));
      const hook = req.method === 'POST' ? HOOK_ROUTE.exec(req.url ?? '') : null;
      if (!hook) throw new HttpError(404, `no operation ${route}`);
      const body = await readJson(req);
      if (typeof body.operation_id !== 'string' || !body.operation_id) throw new HttpError(400, 'operation_id must be a non-empty string');
      const extraVars = body.extra_vars ?? {};
      if (typeof extraVars !== 'object' || extraVars === null || Array.isArray(extraVars)) throw new HttpError(400, 'extra_vars must be an object');
      const running = ctx.hooks.run(body.operation_id, hook[1]!, extraVars as Record<string, unknown>);
      if (running === 'busy') throw new HttpError(409, 'another operation is running on this node');
      return running;
    }
  }
}

function runRole(ctx: OperationsContext, role: string, body: Record<string, unknown>): Promise<unknown> {
  const { operation_id: operationId, deployment, script, attributes, timeout_seconds: timeoutSeconds } = body;
  if (typeof operationId !== 'string' || !operationId) throw new HttpError(400, 'operation_id must be a non-empty string');
  if (typeof deployment !== 'string' || !deployment) throw new HttpError(400, 'deployment must be a non-empty string');
  if (typeof script !== 'string' || !script.startsWith('#!')) throw new HttpError(400, 'script must be the text of an executable, starting with #!');
  if (typeof attributes !== 'object' || attributes === null || Array.isArray(attributes)) throw new HttpError(400, 'attributes must be an object');
  if (typeof timeoutSeconds !== 'number' || !(timeoutSeconds > 0)) throw new HttpError(400, 'timeout_seconds must be a positive number');
  const running = ctx.hooks.runRole(operationId, { role, deployment, script, attributes: attributes as Record<string, unknown>, timeoutMs: timeoutSeconds * 1000 });
  if (running === 'busy') throw new HttpError(409, 'another operation is running on this node');
  return running;
}

/** HTTPS with a required client certificate whose key must be the pinned server key. */
export function createOperationsServer(ctx: OperationsContext): https.Server {
  return https.createServer(
    { key: ctx.identity.privateKeyPem, cert: ctx.identity.certificatePem, requestCert: true, rejectUnauthorized: false },
    (req, res) => {
      const reply = (status: number, body: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      const pinned = ctx.serverFingerprint();
      const caller = peerFingerprint(req.socket as TLSSocket);
      if (!pinned || caller !== pinned) {
        reply(403, { error: { code: 'forbidden', message: 'caller is not the server this agent obeys' } });
        return;
      }
      dispatch(ctx, req).then(
        (body) => reply(200, body),
        (err: unknown) => {
          const status = err instanceof HttpError ? err.status : 500;
          const code = status === 500 ? 'operation_failed' : status === 409 ? 'busy' : 'bad_request';
          reply(status, { error: { code, message: (err as Error).message } });
        },
      );
    },
  );
}

export function listen(server: https.Server, host: string, port: number): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server.address() as AddressInfo);
    });
  });
}

export function close(server: https.Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
