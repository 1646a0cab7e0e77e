import { CliError } from './client';
import { table } from './render';
import { localClock, redrawInPlace, type ViewOptions } from './deploy-watch';

/** An anneal task's progress, as GET /api/v1/tasks/{id} shows it for a commit or a retry. */
export interface AnnealProgress {
  total: number;
  todo: number;
  transition: number;
  active: number;
  error: number;
  blocked: number;
}

/** One noderole of an anneal task. */
export interface AnnealRow {
  id: string | number;
  role: string;
  node: string;
  state: string;
  error: string | null;
}

/** The part of GET /api/v1/tasks/{id} the watcher reads. */
export interface AnnealTask {
  id: string;
  status: string;
  error?: string | null;
  details?: { deployment?: string } | null;
  progress?: AnnealProgress | null;
  noderoles?: AnnealRow[] | null;
}

export const taskEnded = (task: AnnealTask) => task.status === 'succeeded' || task.status === 'failed';

/** `[######........] 4/9 done  active 3  running 1  todo 4  error 1  blocked 0`: done is active, error or blocked. */
export function annealProgressLine(p: AnnealProgress, width = 30): string {
  const done = p.active + p.error + p.blocked;
  const filled = p.total === 0 ? width : Math.min(width, Math.round((done / p.total) * width));
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${p.total} done  active ${p.active}  running ${p.transition}  todo ${p.todo}  error ${p.error}  blocked ${p.blocked}`;
}

/** The same drawing options as an install's view (a terminal redrawn in place, or a line per change). */
export type AnnealViewOptions = ViewOptions;
const SETTLED = ['active', 'error', 'blocked'];

/**
 * What the operator sees while an anneal runs. Fed task snapshots, it draws; it never polls, so it is
 * tested without a server. On a terminal: the noderoles still moving, then the bar, redrawn. Elsewhere:
 * a line per noderole state change and a bar line whenever the counts change.
 */
export class AnnealView {
  private drawn = 0;
  private lastBar = '';
  private readonly seen = new Map<string, string>();
  private readonly now: () => number;
  private readonly clock: (ms: number) => string;

  constructor(private readonly options: AnnealViewOptions) {
    this.now = options.now ?? Date.now;
    this.clock = options.clock ?? localClock;
  }

  show(task: AnnealTask): void {
    if (this.options.tty) this.redraw(task);
    else this.logChanges(task);
  }

  /** Leaves the cursor below the live lines, so what follows does not overwrite them. */
  finish(): void {
    this.drawn = 0;
  }

  private logChanges(task: AnnealTask): void {
    const time = this.clock(this.now());
    for (const nr of task.noderoles ?? []) {
      const key = String(nr.id);
      if (this.seen.get(key) === nr.state) continue;
      this.seen.set(key, nr.state);
      this.options.write(`${time} noderole ${nr.id} ${nr.role} on ${nr.node}: ${nr.state}${nr.error ? ` (${nr.error})` : ''}\n`);
    }
    if (!task.progress) return;
    const bar = annealProgressLine(task.progress);
    if (bar === this.lastBar) return;
    this.lastBar = bar;
    this.options.write(`${bar}\n`);
  }

  private redraw(task: AnnealTask): void {
    const max = this.options.maxRows ?? 40;
    const rows = task.noderoles ?? [];
    // The noderoles still moving first: when they do not all fit, the settled ones are summed up.
    const ordered = [...rows.filter((r) => !SETTLED.includes(r.state)), ...rows.filter((r) => SETTLED.includes(r.state))];
    const shown = ordered.length > max ? ordered.slice(0, Math.max(0, max - 1)) : ordered;
    const lines = shown.length > 0 ? table(['ID', 'NODE', 'ROLE', 'STATE', 'ERROR'], shown.map((r) => [r.id, r.node, r.role, r.state, r.error])).split('\n') : [];
    if (shown.length < ordered.length) {
      const rest = ordered.slice(shown.length);
      lines.push(`... and ${rest.length} more (${rest.filter((r) => SETTLED.includes(r.state)).length} done)`);
    }
    if (task.progress) lines.push(annealProgressLine(task.progress));
    this.drawn = redrawInPlace(lines, this.drawn, this.options);
  }
}

export interface AnnealWatchOptions {
  /** GET /api/v1/tasks/{id}. */
  fetchTask(): Promise<AnnealTask>;
  view: AnnealView;
  intervalMs?: number;
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
  /** How long polls may fail in a row (the service restarting, say) before the wait gives up. */
  toleratedOutageMs?: number;
}

/** Polls the task until it has ended; returns its last snapshot. */
export async function watchAnneal(o: AnnealWatchOptions): Promise<AnnealTask> {
  const now = o.now ?? Date.now;
  const sleep = o.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  let failingSince: number | null = null;
  for (;;) {
    let task: AnnealTask | null = null;
    try {
      task = await o.fetchTask();
      failingSince = null;
    } catch (err) {
      // A refusal (404: no such task) will not change by waiting; an unreachable service may.
      if (err instanceof CliError && /^4\d\d /.test(err.message)) throw err;
      failingSince ??= now();
      if (now() - failingSince > (o.toleratedOutageMs ?? 60_000)) throw err;
    }
    if (task) {
      o.view.show(task);
      if (taskEnded(task)) {
        o.view.finish();
        return task;
      }
    }
    await sleep(o.intervalMs ?? 500);
  }
}

/** The closing lines: every noderole of the task, then one sentence with the counts. */
export function annealSummary(task: AnnealTask, what: string): string {
  const rows = (task.noderoles ?? []).map((r) => [r.id, r.node, r.role, r.state, r.error]);
  const p = task.progress;
  const counts = p ? `${p.active} active, ${p.error} error, ${p.blocked} blocked` : 'no progress reported';
  const lines = rows.length > 0 ? [table(['ID', 'NODE', 'ROLE', 'STATE', 'ERROR'], rows)] : [];
  lines.push(`${what} ${task.status}: ${counts} (task ${task.id})${task.status === 'failed' && task.error ? `\n  ${task.error}` : ''}`);
  return lines.join('\n');
}
