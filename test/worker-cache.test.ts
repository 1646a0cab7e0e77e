import { ConfigError } from '../src/config';
import { DEFAULT_MAX_CACHED_WORKFLOWS, maxCachedWorkflowsFrom, workflowHeapLimitMiB } from '../src/temporal/worker';

/** The worker's sticky cache and the workflow thread's heap limit that follows it (src/temporal/worker.ts). */

test('WORKER_MAX_CACHED_WORKFLOWS sets the cache; unset or empty is the default; 0 turns it off', () => {
  expect(maxCachedWorkflowsFrom({})).toBe(DEFAULT_MAX_CACHED_WORKFLOWS);
  expect(maxCachedWorkflowsFrom({ WORKER_MAX_CACHED_WORKFLOWS: '' })).toBe(DEFAULT_MAX_CACHED_WORKFLOWS);
  expect(maxCachedWorkflowsFrom({ WORKER_MAX_CACHED_WORKFLOWS: '5000' })).toBe(5000);
  expect(maxCachedWorkflowsFrom({ WORKER_MAX_CACHED_WORKFLOWS: '0' })).toBe(0);
});

test.each(['1', '-3', '1.5', 'many'])('WORKER_MAX_CACHED_WORKFLOWS=%s is refused, naming the variable', (value) => {
  expect(() => maxCachedWorkflowsFrom({ WORKER_MAX_CACHED_WORKFLOWS: value })).toThrow(ConfigError);
  expect(() => maxCachedWorkflowsFrom({ WORKER_MAX_CACHED_WORKFLOWS: value })).toThrow(`WORKER_MAX_CACHED_WORKFLOWS=${value} must be 0 (no cache) or a whole number of at least 2`);
});

test("the workflow thread's heap limit grows with the cache: 128 MiB and 256 KiB a run", () => {
  expect(workflowHeapLimitMiB(0)).toBe(128);
  expect(workflowHeapLimitMiB(DEFAULT_MAX_CACHED_WORKFLOWS)).toBe(503);
  expect(workflowHeapLimitMiB(10_000)).toBe(2628);
});
