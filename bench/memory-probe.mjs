/**
 * Loaded into the benchmarked worker with --import (idle-memory.ts): every 5 s each thread of the
 * process (the main thread, and the SDK's workflow thread, which inherits the flag) writes its own V8
 * heap figures to BENCH_MEMORY_PROBE.<threadId>.json. /proc gives one RSS for the whole process; these
 * say how much of it is which isolate's heap, its limit, and the time its garbage collector has taken so
 * far (pauses on this thread, from the 'gc' performance entries). Plain JavaScript: tsx's loader does not reach worker
 * threads, and this must load in them. Nothing runs when the variable is unset.
 */
import fs from 'node:fs';
import { PerformanceObserver, constants } from 'node:perf_hooks';
import v8 from 'node:v8';
import { threadId } from 'node:worker_threads';

const prefix = process.env.BENCH_MEMORY_PROBE;
if (prefix) {
  const mib = (n) => Math.round(n / 2 ** 20);
  const gc = { count: 0, ms: 0, major_count: 0, major_ms: 0 };
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      gc.count += 1;
      gc.ms += entry.duration;
      if (entry.detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) {
        gc.major_count += 1;
        gc.major_ms += entry.duration;
      }
    }
  }).observe({ entryTypes: ['gc'] });
  const write = () => {
    const m = process.memoryUsage();
    const figures = { thread: threadId, heap_used_mib: mib(m.heapUsed), heap_total_mib: mib(m.heapTotal), external_mib: mib(m.external), array_buffers_mib: mib(m.arrayBuffers), heap_size_limit_mib: mib(v8.getHeapStatistics().heap_size_limit), gc: { ...gc, ms: Math.round(gc.ms), major_ms: Math.round(gc.major_ms) } };
    fs.writeFileSync(`${prefix}.${threadId}.json`, JSON.stringify(figures));
  };
  setInterval(write, 5_000).unref();
}
