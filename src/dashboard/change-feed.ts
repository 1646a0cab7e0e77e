import type { Knex } from 'knex';
import { getTask } from '../db/tasks-repo';
import { taskProgress } from '../db/operations-repo';
import { presentTask } from '../api/present';
import { log } from '../log';
import { openTaskProgress, recentRows } from './changes-repo';
import { fleetSummary, nodeSummaries, type FleetSummary, type NodeSummary } from './fleet-repo';

/** What every connected browser is sent after a poll that found changes. */
export interface Change {
  /** Nodes whose row, timeline or events changed, as lists show them (at most MAX_NODES). */
  nodes: NodeSummary[];
  /** More nodes changed than were sent: a view showing many nodes reloads its page. */
  more_nodes: boolean;
  /** Changed nodes that no longer exist (an enrolled node deleted). */
  gone: string[];
  tasks: (ReturnType<typeof presentTask> & { progress?: Record<string, number> })[];
  /** How many cluster events (discovered, disappeared, power …) were recorded. */
  events: number;
  summary: FleetSummary;
}

export type Subscriber = {
  send(event: string, data: unknown): void;
  /** False once the subscriber's session has ended: it is dropped at the next poll. */
  valid(): boolean;
  end(): void;
};

const MAX_NODES = 200;
const MAX_TASKS = 50;
/** How far back each poll looks: a change committed this long after its timestamp is still caught. */
const WINDOW_MS = 10_000;
const KEEPALIVE_MS = 15_000;

/**
 * One poll of the database per process, however many browsers watch: every `intervalMs` while at least
 * one subscriber is connected, none while nobody is. Each poll reads what changed recently, keeps the
 * versions it has seen, and sends every subscriber the same message about what is new.
 */
export class ChangeFeed {
  private readonly subscribers = new Set<Subscriber>();
  private seen = new Map<string, string>();
  private progress = new Map<string, string>();
  private timer: NodeJS.Timeout | undefined;
  private polling = false;
  private failing = false;
  private lastKeepalive = Date.now();

  constructor(
    private readonly knex: Knex,
    private readonly intervalMs = 1_000,
  ) {}

  get size(): number {
    return this.subscribers.size;
  }

  /** A poll is running or scheduled. Once the last subscriber leaves, a running poll ends and none follows. */
  get active(): boolean {
    return this.polling || this.timer !== undefined;
  }

  subscribe(subscriber: Subscriber): () => void {
    this.subscribers.add(subscriber);
    this.schedule();
    return () => {
      this.subscribers.delete(subscriber);
      if (this.subscribers.size === 0) this.stop();
    };
  }

  private stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    // What was seen is forgotten: the next subscriber's first poll reports the whole window again, which
    // covers changes made while nobody was polling (the browser also reloads its view when it connects).
    this.seen = new Map();
    this.progress = new Map();
  }

  private schedule(): void {
    if (this.timer || this.polling || this.subscribers.size === 0) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.poll();
    }, this.intervalMs);
  }

  private async poll(): Promise<void> {
    this.polling = true;
    try {
      this.dropEnded();
      const change = await this.changes();
      if (change) this.broadcast('change', change);
      if (this.failing) log.info('dashboard feed: the database answers again');
      this.failing = false;
    } catch (err) {
      if (!this.failing) log.warn(`dashboard feed: poll failed (retrying every ${this.intervalMs} ms): ${(err as Error).message}`);
      this.failing = true;
    } finally {
      this.polling = false;
    }
    if (Date.now() - this.lastKeepalive >= KEEPALIVE_MS) {
      this.lastKeepalive = Date.now();
      this.broadcast('keepalive', {});
    }
    this.schedule();
  }

  private dropEnded(): void {
    for (const s of this.subscribers) {
      if (s.valid()) continue;
      this.subscribers.delete(s);
      s.end();
    }
    if (this.subscribers.size === 0) this.stop();
  }

  private broadcast(event: string, data: unknown): void {
    for (const s of this.subscribers) s.send(event, data);
  }

  private async changes(): Promise<Change | undefined> {
    const rows = await recentRows(this.knex, WINDOW_MS);
    const progress = await openTaskProgress(this.knex);
    const seen = new Map<string, string>();
    const hostnames = new Set<string>();
    const taskIds = new Set<string>();
    let events = 0;
    for (const row of rows) {
      seen.set(row.key, row.version);
      if (this.seen.get(row.key) === row.version) continue;
      for (const h of row.hostnames) hostnames.add(h);
      if (row.taskId) taskIds.add(row.taskId);
      if (row.clusterEvent) events += 1;
    }
    for (const [taskId, counts] of progress) if (this.progress.get(taskId) !== counts) taskIds.add(taskId);
    this.seen = seen;
    this.progress = progress;
    if (hostnames.size === 0 && taskIds.size === 0 && events === 0) return undefined;

    const wanted = [...hostnames].sort();
    const nodes = await nodeSummaries(this.knex, wanted.slice(0, MAX_NODES));
    const found = new Set(nodes.map((n) => n.hostname));
    const tasks = [];
    for (const id of [...taskIds].slice(0, MAX_TASKS)) {
      const task = await getTask(this.knex, id);
      if (!task) continue;
      const { stepFailures: _internal, ...counts } = task.hostname === null ? await taskProgress(this.knex, id) : { stepFailures: 0 };
      tasks.push(task.hostname === null ? { ...presentTask(task), progress: counts as Record<string, number> } : presentTask(task));
    }
    return {
      nodes,
      more_nodes: wanted.length > MAX_NODES,
      gone: wanted.slice(0, MAX_NODES).filter((h) => !found.has(h)),
      tasks,
      events,
      summary: await fleetSummary(this.knex),
    };
  }
}
