import type { TaskProgress } from '../db/operations-repo';

/** Plain-text tables and the progress bar; no colours, so output pipes and logs cleanly. */
export function table(headers: string[], rows: (string | number | null | undefined)[][]): string {
  const cells = [headers, ...rows.map((r) => r.map((c) => (c === null || c === undefined ? '-' : String(c))))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells.map((r) => r.map((c, i) => (i === r.length - 1 ? c : (c ?? '').padEnd(widths[i]!))).join('  ')).join('\n');
}

/** A bulk task's progress as GET /api/v1/tasks/{id} shows it. */
export type Progress = Omit<TaskProgress, 'stepFailures'>;

export function progressLine(p: Progress, width = 30): string {
  const done = p.succeeded + p.failed;
  const filled = p.total === 0 ? width : Math.round((done / p.total) * width);
  const bar = `${'#'.repeat(filled)}${'.'.repeat(width - filled)}`;
  return `[${bar}] ${done}/${p.total} done  running ${p.running + p.waiting}  queued ${p.queued}  failed ${p.failed}`;
}
