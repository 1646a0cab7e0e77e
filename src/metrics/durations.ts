import type { Knex } from 'knex';
import { Histogram, type Registry } from 'prom-client';

/**
 * Task and install-phase durations, derived from the database at scrape time rather than observed by the
 * process that finishes the work. Why: tasks and installs are finished by worker activities, in whichever
 * worker process ran them, while /metrics is served by the API; reading the finished rows here counts
 * every one of them in a split deployment (and a worker that crashes after finishing a row loses nothing).
 *
 * Incremental, each row once: every scrape reads only rows finished since the newest one seen (minus a
 * short look-back, for rows committed late or stamped by a worker whose clock lags), and skips the ids it
 * already observed in that look-back. A process starts from its start time (less the look-back), like any
 * counter: a restart begins at zero instead of replaying history as one jump.
 */
export const LOOK_BACK_MS = 10_000;

const TASK_BUCKETS = [0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200];
const PHASE_BUCKETS = [1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600];

/** Rows finished since the last call, each returned once. */
export class FinishedSince<Row extends { id: string | number; finished_at: Date }> {
  private newest: number;
  private readonly seen = new Map<string, number>();

  constructor(
    private readonly read: (since: Date) => Promise<Row[]>,
    start: Date,
    private readonly lookBackMs = LOOK_BACK_MS,
  ) {
    this.newest = start.getTime();
  }

  async take(): Promise<Row[]> {
    const rows = await this.read(new Date(this.newest - this.lookBackMs));
    const fresh = rows.filter((row) => !this.seen.has(String(row.id)));
    for (const row of fresh) {
      const at = new Date(row.finished_at).getTime();
      this.seen.set(String(row.id), at);
      this.newest = Math.max(this.newest, at);
    }
    // Ids older than the look-back can never be read again.
    for (const [id, at] of this.seen) if (at < this.newest - this.lookBackMs) this.seen.delete(id);
    return fresh;
  }
}

const seconds = (from: Date | string, to: Date | string) => Math.max(0, (new Date(to).getTime() - new Date(from).getTime()) / 1000);

export function durationHistograms(knex: Knex, registry: Registry, start = new Date()): { refresh(): Promise<void> } {
  const registers = [registry];
  const taskDuration = new Histogram({
    name: 'node_lifecycle_task_duration_seconds',
    help: 'Tasks finished, from start to finish, by kind and final status',
    labelNames: ['kind', 'status'] as const,
    buckets: TASK_BUCKETS,
    registers,
  });
  const taskWait = new Histogram({
    name: 'node_lifecycle_task_queued_seconds',
    help: 'Tasks finished, from request to start (time spent waiting for their nodes), by kind',
    labelNames: ['kind'] as const,
    buckets: TASK_BUCKETS,
    registers,
  });
  const phaseDuration = new Histogram({
    name: 'node_lifecycle_install_phase_duration_seconds',
    help: 'OS installs finished: the time each phase took to be reached from the one before it, by phase',
    labelNames: ['phase'] as const,
    buckets: PHASE_BUCKETS,
    registers,
  });
  const installDuration = new Histogram({
    name: 'node_lifecycle_install_duration_seconds',
    help: 'OS installs finished, from their first phase to their end, by final status',
    labelNames: ['status'] as const,
    buckets: PHASE_BUCKETS,
    registers,
  });

  // Tasks that never started (abandoned, withdrawn) ran for no time: they are not durations.
  const tasks = new FinishedSince<{ id: string; kind: string; status: string; created_at: Date; started_at: Date; finished_at: Date }>(
    (since) => knex('tasks').select('id', 'kind', 'status', 'created_at', 'started_at', 'finished_at').where('finished_at', '>', since).whereNotNull('started_at'),
    start,
  );
  const installs = new FinishedSince<{ id: string; status: string; phases: { phase: string; at: string }[]; finished_at: Date }>(
    (since) => knex('installs').select('id', 'status', 'phases', 'finished_at').where('finished_at', '>', since),
    start,
  );

  let pending: Promise<void> = Promise.resolve();
  return {
    /** Serialized: two scrapes at once must not read and observe the same rows twice. */
    refresh() {
      pending = pending
        .catch(() => undefined)
        .then(async () => {
          for (const task of await tasks.take()) {
            taskDuration.observe({ kind: task.kind, status: task.status }, seconds(task.started_at, task.finished_at));
            taskWait.observe({ kind: task.kind }, seconds(task.created_at, task.started_at));
          }
          for (const install of await installs.take()) {
            const phases = install.phases ?? [];
            // The first phase is reached from the queue, not from another phase: it has no duration of its own.
            for (let i = 1; i < phases.length; i++) phaseDuration.observe({ phase: phases[i]!.phase }, seconds(phases[i - 1]!.at, phases[i]!.at));
            if (phases[0]) installDuration.observe({ status: install.status }, seconds(phases[0].at, install.finished_at));
          }
        });
      return pending;
    },
  };
}
