/**
 * Loaded into the benchmarked worker with --import (idle-memory.ts): every 5 s each thread of the
 * process (the main thread, and the SDK's workflow thread, which inherits the flag) writes its own V8
 * heap figures to BENCH_MEMORY_PROBE.<threadId>.json. /proc gives one RSS for the whole process; these
 * say how much of it is which isolate's heap. Plain JavaScript: tsx's loader does not reach worker
 * threads, and this must load in them. Nothing runs when the variable is unset.
 */
import fs from 'node:fs';
import { threadId } from 'node:worker_threads';

const prefix = process.env.BENCH_MEMORY_PROBE;
if (prefix) {
  const mib = (n) => Math.round(n / 2 ** 20);
  const write = () => {
    const m = process.memoryUsage();
    const figures = { thread: threadId, heap_used_mib: mib(m.heapUsed), heap_total_mib: mib(m.heapTotal), external_mib: mib(m.external), array_buffers_mib: mib(m.arrayBuffers) };
    fs.writeFileSync(`${prefix}.${threadId}.json`, JSON.stringify(figures));
  };
  setInterval(write, 5_000).unref();
}
