import fs from 'node:fs';
import path from 'node:path';
import { startAgent, type AgentHandle, type AgentOptions } from '../agent/agent';
import type { HookObserver } from '../agent/hooks';

export interface FleetOptions {
  serverUrl: string;
  count: number;
  /** Host names are `${prefix}-${index}` with index zero-padded. */
  prefix: string;
  /** Each agent's state dir and sandbox live under rootDir/<hostname>. */
  rootDir: string;
  /** Second octet of the agents' 127.x.y.z addresses, so fleets do not share addresses. */
  network?: number;
  announceIntervalMs?: number;
  /** Agents come up this many at a time (key generation and TLS set-up are CPU work). */
  startParallelism?: number;
}

/** What the agents themselves saw: the most operations ever running at once, overall and on one node. */
export class ConcurrencyGauge implements HookObserver {
  running = 0;
  maxRunning = 0;
  maxOnOneNode = 0;
  total = 0;
  private readonly perNode = new Map<string, number>();

  started(hostname: string): void {
    this.running += 1;
    this.total += 1;
    this.maxRunning = Math.max(this.maxRunning, this.running);
    const onNode = (this.perNode.get(hostname) ?? 0) + 1;
    this.perNode.set(hostname, onNode);
    this.maxOnOneNode = Math.max(this.maxOnOneNode, onNode);
  }

  ended(hostname: string): void {
    this.running -= 1;
    this.perNode.set(hostname, (this.perNode.get(hostname) ?? 1) - 1);
  }
}

interface SimulatedNode {
  hostname: string;
  options: AgentOptions;
  handle?: AgentHandle;
  port: number;
}

/**
 * Many node agents in one process, each with its own key, its own 127.x.y.z address and its own
 * sandbox, speaking the real agent protocol. Failures are injected per node.
 */
export class Fleet {
  readonly gauge = new ConcurrencyGauge();
  /** When each node's ready message was delivered (epoch ms), for latency measurements. */
  readonly readyAt = new Map<string, number>();
  private readonly nodes = new Map<string, SimulatedNode>();

  private constructor(private readonly options: FleetOptions) {}

  static async start(options: FleetOptions): Promise<Fleet> {
    const fleet = new Fleet(options);
    const width = String(options.count - 1).length;
    const names = Array.from({ length: options.count }, (_, i) => `${options.prefix}-${String(i).padStart(width, '0')}`);
    const parallel = options.startParallelism ?? 25;
    for (let i = 0; i < names.length; i += parallel) {
      await Promise.all(names.slice(i, i + parallel).map((name, j) => fleet.add(name, i + j)));
    }
    return fleet;
  }

  private async add(hostname: string, index: number): Promise<void> {
    const root = path.join(this.options.rootDir, hostname);
    const n = index + 1;
    const options: AgentOptions = {
      serverUrl: this.options.serverUrl,
      hostname,
      listenHost: `127.${this.options.network ?? 100}.${Math.floor(n / 250)}.${(n % 250) + 1}`,
      listenPort: 0,
      stateDir: path.join(root, 'state'),
      sandbox: path.join(root, 'sandbox'),
      announceIntervalMs: this.options.announceIntervalMs ?? 1_000,
      rebootDurationMs: 500,
      hookObserver: this.gauge,
      onReadySent: (name) => {
        if (!this.readyAt.has(name)) this.readyAt.set(name, Date.now());
      },
    };
    const handle = await startAgent(options);
    this.nodes.set(hostname, { hostname, options, handle, port: Number(new URL(handle.address).port) });
  }

  /** In name order (names are zero-padded), whichever agent finished starting first. */
  get hostnames(): string[] {
    return [...this.nodes.keys()].sort();
  }

  fingerprint(hostname: string): string {
    return this.node(hostname).handle!.fingerprint;
  }

  sandbox(hostname: string): string {
    return this.node(hostname).options.sandbox!;
  }

  private node(hostname: string): SimulatedNode {
    const node = this.nodes.get(hostname);
    if (!node) throw new Error(`no simulated node ${hostname}`);
    return node;
  }

  /** The node's hook for `operation` fails with `message` (exit 1) until cleared. */
  failHook(hostname: string, operation: string, message = `${operation} failed (injected)`): void {
    this.writeInjection(hostname, 'fail', operation, message);
  }

  /** The node's hook for `operation` takes `ms` longer. */
  slowHook(hostname: string, operation: string, ms: number): void {
    this.writeInjection(hostname, 'slow', operation, String(ms));
  }

  clearInjections(hostname: string): void {
    for (const kind of ['fail', 'slow']) fs.rmSync(path.join(this.sandbox(hostname), kind), { recursive: true, force: true });
  }

  private writeInjection(hostname: string, kind: string, operation: string, content: string): void {
    const dir = path.join(this.sandbox(hostname), kind);
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, operation), content);
  }

  /** The agent goes silent: no heartbeats, no answers. */
  async disappear(hostname: string): Promise<void> {
    const node = this.node(hostname);
    await node.handle?.stop();
    node.handle = undefined;
  }

  /** The agent comes back with the same key, address and port. */
  async reappear(hostname: string): Promise<void> {
    const node = this.node(hostname);
    if (node.handle) return;
    node.handle = await startAgent({ ...node.options, listenPort: node.port });
  }

  async stop(): Promise<void> {
    await Promise.all([...this.nodes.values()].map((n) => n.handle?.stop()));
  }
}
