import { forEachLimited } from '../concurrency';
import { table } from './render';

/** A node's `deploy` object, as GET /api/v1/nodes/{name} shows it (null when it never deployed). */
export interface DeployStatus {
  task_id: string;
  image: string;
  status: 'queued' | 'running' | 'succeeded' | 'failed' | 'aborted';
  phase: string | null;
  phases: { phase: string; at: string }[];
  error: string | null;
  queue_position: number | null;
}

/** The part of GET /api/v1/nodes/{name} the watcher reads. */
export interface NodeSnapshot {
  hostname: string;
  state: string;
  last_error: string | null;
  deploy: DeployStatus | null;
}

/** The part of GET /api/v1/tasks/{id} the watcher reads. */
export interface TaskSnapshot {
  status: string;
  error?: string | null;
  nodes?: { hostname: string; status: string; error: string | null }[];
}

export const FINISHED_DEPLOY = ['succeeded', 'failed', 'aborted'];
/** States a node rests in after a deploy; anything else (deploying, initializing) is still moving. */
export const STABLE_STATES = ['active', 'deploy failed', 'failed', 'manageable'];

/** One node as the watcher last saw it. */
export interface NodeProgress {
  hostname: string;
  /** null until the first answer; 'gone' once the node answers 404. */
  state: string | null;
  /** The deploy this command started, once it shows; an earlier deploy of the node is never shown. */
  deploy: DeployStatus | null;
  lastError: string | null;
  done: boolean;
  /** Local clock: when the watcher first saw it done. */
  doneAt: number | null;
  /** Why a node is done without a deploy of its own (it never started). */
  note: string | null;
}

export const isDeployFinished = (d: DeployStatus | null) => d !== null && FINISHED_DEPLOY.includes(d.status);

/**
 * Done means both: the deploy has a result and the node rests in a stable state. A succeeded deploy
 * is followed by the node initializing, which is still part of getting it to active.
 */
export function isNodeDone(state: string | null, deploy: DeployStatus | null): boolean {
  return isDeployFinished(deploy) && state !== null && STABLE_STATES.includes(state);
}

export const succeeded = (p: NodeProgress) => p.state === 'active' && p.deploy?.status === 'succeeded';

/** 0 when every node reached active with its deploy succeeded, else 1. */
export function exitCodeOf(progress: NodeProgress[]): number {
  return progress.every(succeeded) ? 0 : 1;
}

export function formatElapsed(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

/** When the deploy's current phase began (server clock), or null. */
function phaseStartedAt(deploy: DeployStatus): number | null {
  for (let i = deploy.phases.length - 1; i >= 0; i--) {
    const p = deploy.phases[i]!;
    if (p.phase === deploy.phase) return Date.parse(p.at);
  }
  return null;
}

/** The phase column: where the deploy is, with how long it has been there while it runs. */
export function phaseText(p: NodeProgress, now: number): string {
  const d = p.deploy;
  if (!d) return p.note ?? (p.done ? '-' : 'waiting for the deploy to start');
  if (d.status === 'queued') return d.queue_position === null ? 'queued' : `queued (position ${d.queue_position})`;
  if (d.status === 'running') {
    const since = phaseStartedAt(d);
    const phase = d.phase ?? 'starting';
    return since === null ? phase : `${phase} (${formatElapsed(now - since)})`;
  }
  return `deploy ${d.status}${d.phase ? ` after ${d.phase}` : ''}`;
}

export interface ViewOptions {
  /** Redraw in place (a terminal), or print a line per change (a pipe, a log). */
  tty: boolean;
  write: (text: string) => void;
  now?: () => number;
  /** On a terminal, the most node lines drawn; the rest are summed up in one line. */
  maxRows?: number;
  /** On a terminal, its width: a longer line would wrap and the redraw would climb too few lines. */
  columns?: number;
  /** Clock time of a line in a log; local HH:MM:SS by default. */
  clock?: (ms: number) => string;
}

export const localClock = (ms: number) => new Date(ms).toTimeString().slice(0, 8);

/**
 * Draws `lines` on a terminal over the `drawn` lines of the last draw: up to the first of them, then
 * each line cleared and written again (cut to the width, so none wraps), and what is left below cleared.
 * Returns how many lines are drawn now.
 */
export function redrawInPlace(lines: string[], drawn: number, options: Pick<ViewOptions, 'write' | 'columns'>): number {
  const up = drawn > 0 ? `\x1b[${drawn}A` : '';
  const width = options.columns ?? Infinity;
  const fit = (line: string) => (line.length < width ? line : line.slice(0, Math.max(1, width - 1)));
  options.write(`${up}${lines.map((l) => `\r\x1b[2K${fit(l)}\n`).join('')}`);
  if (drawn > lines.length) options.write('\x1b[J');
  return lines.length;
}

/**
 * What the operator sees while waiting. Fed snapshots, it draws; it never polls, so it is tested
 * without a server. On a terminal: one line per node, redrawn. Elsewhere: one line per phase
 * (every phase the deploy records, even those that passed between two polls) and per state change.
 */
export class DeployView {
  private drawn = 0;
  private readonly seenPhases = new Map<string, number>();
  private readonly seenStates = new Map<string, string>();
  private readonly seenResults = new Set<string>();
  private readonly now: () => number;
  private readonly clock: (ms: number) => string;

  constructor(private readonly options: ViewOptions) {
    this.now = options.now ?? Date.now;
    this.clock = options.clock ?? localClock;
  }

  show(progress: NodeProgress[]): void {
    if (this.options.tty) this.redraw(progress);
    else for (const p of progress) this.logChanges(p);
  }

  /** Leaves the cursor below the live lines, so what follows does not overwrite them. */
  finish(): void {
    this.drawn = 0;
  }

  private redraw(progress: NodeProgress[]): void {
    const now = this.now();
    const max = this.options.maxRows ?? 40;
    // Nodes still moving first: when they do not all fit, the finished ones are the ones summed up.
    const ordered = [...progress.filter((p) => !p.done), ...progress.filter((p) => p.done)];
    const shown = ordered.length > max ? ordered.slice(0, max - 1) : ordered;
    const rows = shown.map((p) => [p.hostname, p.state ?? '-', phaseText(p, now)]);
    const lines = rows.length > 0 ? table(['NODE', 'STATE', 'PHASE'], rows).split('\n') : [];
    if (shown.length < ordered.length) {
      const rest = ordered.slice(shown.length);
      lines.push(`... and ${rest.length} more (${rest.filter((p) => p.done).length} done)`);
    }
    this.drawn = redrawInPlace(lines, this.drawn, this.options);
  }

  private logChanges(p: NodeProgress): void {
    const { write } = this.options;
    if (p.state !== null && this.seenStates.get(p.hostname) !== p.state) {
      this.seenStates.set(p.hostname, p.state);
      write(`${this.clock(this.now())} ${p.hostname} state ${p.state}\n`);
    }
    const d = p.deploy;
    if (!d) return;
    if (d.status === 'queued' && !this.seenPhases.has(p.hostname)) {
      write(`${this.clock(this.now())} ${p.hostname} ${phaseText(p, this.now())}\n`);
      this.seenPhases.set(p.hostname, 0);
    }
    const from = this.seenPhases.get(p.hostname) ?? 0;
    for (const entry of d.phases.slice(from)) {
      const at = Date.parse(entry.at);
      write(`${this.clock(Number.isNaN(at) ? this.now() : at)} ${p.hostname} phase ${entry.phase}\n`);
    }
    this.seenPhases.set(p.hostname, Math.max(from, d.phases.length));
    if (isDeployFinished(d) && !this.seenResults.has(p.hostname)) {
      this.seenResults.add(p.hostname);
      write(`${this.clock(this.now())} ${p.hostname} deploy ${d.status}${d.error ? `: ${d.error}` : ''}\n`);
    }
  }
}

/** The closing table: one row per node, in the order they were named. */
export function summaryTable(progress: NodeProgress[], startedAt: number): string {
  return table(
    ['NODE', 'STATE', 'RESULT', 'DURATION', 'ERROR'],
    progress.map((p) => [
      p.hostname,
      p.state,
      p.deploy?.status ?? 'not started',
      p.doneAt === null ? null : formatElapsed(p.doneAt - startedAt),
      p.deploy?.error ?? p.note ?? (p.state === 'active' ? null : p.lastError),
    ]),
  );
}

export interface WatchOptions {
  hostnames: string[];
  /**
   * Each node's deploy task id before the request was sent (null: none). A deploy with another task id
   * is the one this command started; until it shows, the node's earlier deploy is not mistaken for it.
   */
  baseline: Map<string, string | null>;
  /** The task the request started: a node's deploy of this id is ours whatever the baseline says. */
  taskId?: string;
  /** GET /api/v1/nodes/{name}; null for 404. */
  fetchNode(hostname: string): Promise<NodeSnapshot | null>;
  /** GET /api/v1/tasks/{id}: once it has ended, a node that never got a deploy is done too. */
  fetchTask?(): Promise<TaskSnapshot | null>;
  view: DeployView;
  intervalMs?: number;
  parallel?: number;
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
  /** How long polls may fail in a row (the service restarting, say) before the wait gives up. */
  toleratedOutageMs?: number;
}

/** Polls until every node is done; returns each node as last seen, in the order named. */
export async function watchDeploy(o: WatchOptions): Promise<NodeProgress[]> {
  const now = o.now ?? Date.now;
  const sleep = o.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const progress = o.hostnames.map(
    (hostname): NodeProgress => ({ hostname, state: null, deploy: null, lastError: null, done: false, doneAt: null, note: null }),
  );
  let failingSince: number | null = null;
  for (;;) {
    try {
      // The task is read before the nodes: a task seen ended means the node reads after it are final.
      const task = o.fetchTask ? await o.fetchTask().catch(() => null) : null;
      const taskEnded = task !== null && ['succeeded', 'failed'].includes(task.status);
      await forEachLimited(
        progress.filter((p) => !p.done),
        o.parallel ?? 8,
        async (p) => {
          observe(p, await o.fetchNode(p.hostname), o, task, taskEnded, now());
        },
      );
      failingSince = null;
    } catch (err) {
      failingSince ??= now();
      if (now() - failingSince > (o.toleratedOutageMs ?? 60_000)) throw err;
    }
    o.view.show(progress);
    if (progress.every((p) => p.done)) {
      o.view.finish();
      return progress;
    }
    await sleep(o.intervalMs ?? 1000);
  }
}

function observe(p: NodeProgress, node: NodeSnapshot | null, o: WatchOptions, task: TaskSnapshot | null, taskEnded: boolean, at: number): void {
  if (node === null) {
    Object.assign(p, { state: 'gone', done: true, doneAt: at, note: 'the node was deleted' });
    return;
  }
  p.state = node.state;
  p.lastError = node.last_error;
  const d = node.deploy;
  const ours = d !== null && (d.task_id === o.taskId || d.task_id !== (o.baseline.get(p.hostname) ?? null));
  if (ours) p.deploy = d;
  if (isNodeDone(p.state, p.deploy)) {
    p.done = true;
    p.doneAt = at;
  } else if (!p.deploy && taskEnded) {
    // The request ended without ever deploying this node: nothing more will happen to it.
    const entry = task?.nodes?.find((n) => n.hostname === p.hostname);
    Object.assign(p, { done: true, doneAt: at, note: `not deployed: ${entry?.error ?? task?.error ?? `task ${task?.status}`}` });
  }
}
