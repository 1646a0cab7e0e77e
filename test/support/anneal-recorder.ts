import fs from 'node:fs';
import path from 'node:path';

/**
 * What the nodes themselves saw of an anneal: one executable, used both as a script role and as a
 * commission hook, that appends a JSON line to a shared log when it starts and when it ends. It is
 * driven by its input alone (a role's effective attributes, or a hook's extra_vars):
 * - `log`: the file it appends to (required);
 * - `hold`: it waits until this file exists before it goes on;
 * - `sleep_ms`: it takes that much longer;
 * - `fail_unless`: it exits 1 (after a `fail` line) unless this file exists.
 * A role reads `{role, hostname, deployment, attributes}` on stdin, a hook `{operation, hostname, extra_vars}`.
 */
export const RECORDER_SCRIPT = `#!${process.execPath}
const fs = require('fs');
let text = '';
process.stdin.on('data', (d) => (text += d));
process.stdin.on('end', async () => {
  const doc = JSON.parse(text);
  const what = doc.role || doc.operation;
  const a = doc.attributes || doc.extra_vars || {};
  if (!a.log) {
    console.error('recorder: no log attribute in ' + text);
    process.exit(2);
  }
  const record = (event) =>
    fs.appendFileSync(a.log, JSON.stringify({ what, event, host: doc.hostname, deployment: doc.deployment, at: Date.now(), pid: process.pid, input: doc }) + '\\n');
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  record('start');
  if (a.hold) while (!fs.existsSync(a.hold)) await sleep(100);
  if (a.sleep_ms) await sleep(Number(a.sleep_ms));
  if (a.fail_unless && !fs.existsSync(a.fail_unless)) {
    record('fail');
    console.error(what + ': ' + a.fail_unless + ' is missing');
    process.exit(1);
  }
  record('end');
  console.log(what + ' done on ' + doc.hostname);
});
`;

export interface LogLine {
  /** The role, or the hook's operation. */
  what: string;
  event: 'start' | 'end' | 'fail';
  host: string;
  deployment?: string;
  at: number;
  pid: number;
  /** Exactly what the script read on stdin. */
  input: { role?: string; operation?: string; hostname: string; deployment?: string; attributes?: any; extra_vars?: any };
}

/** One run of the script: its start and, once it finished, its end (or failure). */
export interface Run {
  what: string;
  host: string;
  start: number;
  end: number | undefined;
  failed: boolean;
  input: LogLine['input'];
}

export function readRecords(log: string): LogLine[] {
  if (!fs.existsSync(log)) return [];
  return fs
    .readFileSync(log, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as LogLine);
}

/** Runs in the order they started; a process's start and end lines are paired by its pid. */
export function readRuns(log: string): Run[] {
  const runs: Run[] = [];
  const open = new Map<number, Run>();
  for (const r of readRecords(log)) {
    if (r.event === 'start') {
      const run: Run = { what: r.what, host: r.host, start: r.at, end: undefined, failed: false, input: r.input };
      runs.push(run);
      open.set(r.pid, run);
    } else {
      const run = open.get(r.pid);
      if (!run) throw new Error(`an ${r.event} line without its start: ${JSON.stringify(r)}`);
      run.end = r.at;
      run.failed = r.event === 'fail';
      open.delete(r.pid);
    }
  }
  return runs;
}

export const runsOf = (runs: Run[], what: string, host?: string) => runs.filter((r) => r.what === what && (host === undefined || r.host === host));

/**
 * The most runs at any moment, overall and on one node. A run that never ended counts as running for
 * ever. At equal times an end comes before a start: a script writes its end line before it exits, and
 * only then can the server hand the node or the slot to the next one.
 */
export function concurrency(runs: Run[]): { maxRunning: number; maxOnOneNode: number } {
  const events = runs.flatMap((r) => [
    { at: r.start, delta: 1, host: r.host },
    { at: r.end ?? Number.POSITIVE_INFINITY, delta: -1, host: r.host },
  ]);
  events.sort((x, y) => x.at - y.at || x.delta - y.delta);
  let running = 0;
  let maxRunning = 0;
  let maxOnOneNode = 0;
  const perNode = new Map<string, number>();
  for (const e of events) {
    running += e.delta;
    maxRunning = Math.max(maxRunning, running);
    const onNode = (perNode.get(e.host) ?? 0) + e.delta;
    perNode.set(e.host, onNode);
    maxOnOneNode = Math.max(maxOnOneNode, onNode);
  }
  return { maxRunning, maxOnOneNode };
}

/** Installs the recorder as a node's hook for `operation` (the fleet's hooks directory). */
export function installRecorderHook(sandbox: string, operation: string): void {
  const dir = path.join(sandbox, 'etc/nodeagent/hooks');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, operation), RECORDER_SCRIPT, { mode: 0o755 });
}
