import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** Shared by the inventory and idle-memory benchmarks: percentiles, the machine's load, the result file. */

export const log = (m: string) => console.log(`${new Date().toISOString().slice(11, 19)} ${m}`);

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

const round = (n: number) => Math.round(n * 100) / 100;

export interface Summary {
  count: number;
  p50_ms: number;
  p99_ms: number;
  max_ms: number;
}

export function summary(values: number[]): Summary {
  const sorted = [...values].sort((a, b) => a - b);
  return { count: sorted.length, p50_ms: round(percentile(sorted, 50)), p99_ms: round(percentile(sorted, 99)), max_ms: round(sorted.at(-1) ?? NaN) };
}

/**
 * The machine as the run found it. The bench machine is shared: a 1-minute load average above the core
 * count means other work competed for the CPU, and every figure should be read with that in mind.
 */
export function machine() {
  return {
    nproc: os.availableParallelism(),
    cpu_model: os.cpus()[0]?.model.trim(),
    memory_gb: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    load_1min: os.loadavg()[0]!,
  };
}

export function writeResult(name: string, result: { at: string }): string {
  const file = path.join(__dirname, 'results', `${result.at.replace(/[:.]/g, '-')}-${name}.json`);
  fs.writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  return path.relative(process.cwd(), file);
}

/** A table of rows (first row the header), columns padded to their widest cell. */
export function table(rows: (string | number)[][]): string {
  const cells = rows.map((r) => r.map(String));
  const widths = cells[0]!.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ')).join('\n');
}

/** Runs the cleanup steps in reverse order of their registration; a failing step is reported, the rest still run. */
export async function runCleanup(steps: (() => Promise<unknown>)[]): Promise<void> {
  for (const step of [...steps].reverse()) await step().catch((err: unknown) => console.error(`cleanup: ${(err as Error).message}`));
}

/** A benchmark's entry point: exit 0 when it is done, 1 with the error printed when it failed. */
export function runBenchmark(main: () => Promise<void>): void {
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
