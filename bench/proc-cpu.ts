import { execFileSync } from 'node:child_process';
import fs from 'node:fs';

/**
 * CPU time by process group, read from /proc: utime + stime (fields 14 and 15 of /proc/<pid>/stat, in
 * clock ticks). A process that exits takes its counters with it, so the sampler reads every second and
 * keeps each process's last reading: a PostgreSQL backend closed by an idle pool still counts, up to
 * its last second.
 */

const TICKS_PER_SECOND = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/** A group named by its root processes (each with its descendants) or by a test on a process's command line. */
export interface GroupRule {
  name: string;
  roots?: () => (number | undefined)[];
  matches?: (cmdline: string) => boolean;
}

interface ProcStat {
  pid: number;
  ppid: number;
  ticks: number;
  /** Field 22: with the pid, a process's identity (pids are reused). */
  start: string;
}

function readStat(pid: string): ProcStat | undefined {
  try {
    const raw = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: fields are counted after its last ')'.
    const rest = raw.slice(raw.lastIndexOf(')') + 2).split(' ');
    return { pid: Number(pid), ppid: Number(rest[1]), ticks: Number(rest[11]) + Number(rest[12]), start: rest[19]! };
  } catch {
    return undefined;
  }
}

function readCmdline(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
  } catch {
    return '';
  }
}

interface Tracked {
  group: string;
  /** Ticks when first seen at the sampler's start (counted from there), 0 for processes born later. */
  base: number;
  last: number;
}

export class CpuSampler {
  private readonly tracked = new Map<string, Tracked>();
  private readonly cmdlines = new Map<string, string>();
  private timer: NodeJS.Timeout | undefined;
  private first = true;

  constructor(private readonly rules: GroupRule[]) {}

  start(intervalMs = 1000): void {
    this.sample();
    this.first = false;
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** Seconds of CPU per group since the sampler started (read now). */
  totals(): Record<string, number> {
    this.sample();
    const out: Record<string, number> = Object.fromEntries(this.rules.map((r) => [r.name, 0]));
    for (const t of this.tracked.values()) out[t.group] = (out[t.group] ?? 0) + (t.last - t.base) / TICKS_PER_SECOND;
    return out;
  }

  private sample(): void {
    const stats = fs
      .readdirSync('/proc')
      .filter((d) => /^\d+$/.test(d))
      .map(readStat)
      .filter((s): s is ProcStat => s !== undefined);
    const children = new Map<number, number[]>();
    for (const s of stats) children.set(s.ppid, [...(children.get(s.ppid) ?? []), s.pid]);
    const owner = new Map<number, string>();
    for (const rule of this.rules) {
      const queue = (rule.roots?.() ?? []).filter((p): p is number => p !== undefined);
      while (queue.length > 0) {
        const pid = queue.pop()!;
        if (owner.has(pid)) continue;
        owner.set(pid, rule.name);
        queue.push(...(children.get(pid) ?? []));
      }
    }
    for (const s of stats) {
      const key = `${s.pid}:${s.start}`;
      let group = owner.get(s.pid) ?? this.tracked.get(key)?.group;
      if (!group) {
        let cmdline = this.cmdlines.get(key);
        if (cmdline === undefined) this.cmdlines.set(key, (cmdline = readCmdline(s.pid)));
        group = this.rules.find((r) => r.matches?.(cmdline))?.name;
      }
      if (!group) continue;
      const known = this.tracked.get(key);
      if (known) {
        known.last = s.ticks;
        // A child seen before its pid was known (as the bench's descendant) moves to its own group, whole.
        known.group = group;
      }
      else this.tracked.set(key, { group, base: this.first ? s.ticks : 0, last: s.ticks });
    }
  }
}

/** A PostgreSQL backend's title names its database: `postgres: 15/main: user database 127.0.0.1(port) state`. */
export function postgresBackendOf(databases: () => string[]): (cmdline: string) => boolean {
  return (cmdline) => {
    const m = /^postgres: (?:\S+: )?\S+ (\S+) /.exec(cmdline);
    return m !== null && databases().includes(m[1]!);
  };
}

export const isPostgres = (cmdline: string) => cmdline.startsWith('postgres') || cmdline.includes('/bin/postgres ');
