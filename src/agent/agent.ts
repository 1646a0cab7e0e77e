import type https from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadOrCreateIdentity, type Identity } from '../identity/identity';
import { log } from '../log';
import { HookRunner, type HookObserver } from './hooks';
import { HostOperations } from './operations';
import { close, createOperationsServer, listen } from './server';
import { ServerLink } from './server-link';

export interface AgentOptions {
  serverUrl: string;
  hostname: string;
  listenHost: string;
  listenPort: number;
  /** Host name or address the server should use to reach this agent; defaults to listenHost. */
  advertiseHost?: string;
  stateDir: string;
  sandbox?: string;
  /** Pin this server key instead of trusting the first server that answers. */
  serverFingerprint?: string;
  announceIntervalMs?: number;
  /** How long a simulated (sandbox) reboot keeps the agent away. */
  rebootDurationMs?: number;
  /** Operation hooks; default etc/nodeagent/hooks under the sandbox, /etc/nodeagent/hooks without one. */
  hooksDir?: string;
  /** In-process observer of hook runs (the fleet simulator counts concurrency with it). */
  hookObserver?: HookObserver;
  /** Called when the ready message has been delivered (the benchmark times ready -> active from it). */
  onReadySent?: (hostname: string) => void;
}

export interface AgentHandle {
  hostname: string;
  fingerprint: string;
  address: string;
  stop(): Promise<void>;
}

/**
 * The node agent: serves operations over pinned HTTPS, announces itself until accepted, then sends
 * the server one ready message per start (salt-minion's start event) and keeps announcing as a heartbeat.
 */
export async function startAgent(options: AgentOptions): Promise<AgentHandle> {
  const identity: Identity = await loadOrCreateIdentity(options.stateDir, options.hostname);
  const link = new ServerLink(options.serverUrl, identity, options.stateDir, options.serverFingerprint);
  await link.loadPin();
  const interval = options.announceIntervalMs ?? 10_000;
  const stopping = new AbortController();
  let wake = new AbortController();
  let readySent = false;
  let server: https.Server;
  let port = options.listenPort;

  const simulateReboot = () => {
    const away = options.rebootDurationMs ?? 5_000;
    log.info(`agent ${options.hostname}: simulated reboot, away for ${away} ms`);
    void (async () => {
      await close(server);
      await sleep(away, undefined, { signal: stopping.signal }).catch(() => undefined);
      if (stopping.signal.aborted) return;
      server = createOperationsServer(context);
      await listen(server, options.listenHost, port);
      readySent = false;
      wake.abort();
    })();
  };
  const operations = new HostOperations(options.sandbox);
  const hooksDir = options.hooksDir ?? operations.hostPath('/etc/nodeagent/hooks');
  const context = {
    hostname: options.hostname,
    identity,
    operations,
    hooks: new HookRunner(options.hostname, hooksDir, operations, options.sandbox, options.hookObserver),
    serverFingerprint: () => link.serverFingerprint(),
    simulateReboot,
    sandboxed: Boolean(options.sandbox),
  };

  server = createOperationsServer(context);
  port = (await listen(server, options.listenHost, options.listenPort)).port;
  const address = `https://${formatHost(options.advertiseHost ?? options.listenHost)}:${port}`;

  const loop = (async () => {
    while (!stopping.signal.aborted) {
      try {
        const answer = await link.announce({
          hostname: options.hostname,
          fingerprint: identity.fingerprint,
          public_key: identity.publicKeyPem,
          address,
        });
        if (answer.accepted && !readySent) {
          await link.ready(options.hostname);
          readySent = true;
          options.onReadySent?.(options.hostname);
          log.info(`agent ${options.hostname}: accepted; ready sent`);
        }
      } catch (err) {
        if (stopping.signal.aborted) break;
        log.warn(`agent ${options.hostname}: ${(err as Error).message}`);
      }
      wake = new AbortController();
      await sleep(interval, undefined, { signal: AbortSignal.any([stopping.signal, wake.signal]) }).catch(() => undefined);
    }
  })();

  return {
    hostname: options.hostname,
    fingerprint: identity.fingerprint,
    address,
    async stop() {
      stopping.abort();
      await loop;
      await close(server);
    },
  };
}

function formatHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}
