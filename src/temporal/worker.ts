import v8 from 'node:v8';
import { bundleWorkflowCode, NativeConnection, Worker, type ActivityInterceptorsFactory, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import type { Activities } from '../../activities';
import { ConfigError } from '../config';
import { withLogContext } from '../log';
import { nodeWorkflowId } from '../../workflows/definitions';

let bundle: Promise<WorkflowBundleWithSourceMap> | undefined;

/** Bundling takes about half a second; every worker of a process shares one bundle. */
export function workflowBundle(): Promise<WorkflowBundleWithSourceMap> {
  bundle ??= bundleWorkflowCode({ workflowsPath: require.resolve('../../workflows'), logger: quietBundlerLogger });
  return bundle;
}

const quietBundlerLogger = {
  log: () => undefined,
  trace: () => undefined,
  debug: () => undefined,
  info: () => undefined,
  warn: (message: string) => console.warn(message),
  error: (message: string) => console.error(message),
};

const NODE_WORKFLOW_PREFIX = nodeWorkflowId('');

/**
 * Every line an activity logs carries its workflow id, activity type and, where the activity is about
 * one node, its hostname: taken from the first argument's `hostname` (most activities take
 * `{ hostname, ... }`), else from a node workflow's id.
 */
const activityLogContext: ActivityInterceptorsFactory = (ctx) => ({
  inbound: {
    execute: (input, next) => {
      const { workflowExecution, activityType } = ctx.info;
      const workflowId = workflowExecution?.workflowId ?? '';
      const argument = input.args[0] as { hostname?: unknown } | undefined;
      const hostname =
        typeof argument?.hostname === 'string' ? argument.hostname : workflowId.startsWith(NODE_WORKFLOW_PREFIX) ? workflowId.slice(NODE_WORKFLOW_PREFIX.length) : undefined;
      return withLogContext({ ...(workflowId ? { workflowId } : {}), activity: activityType, ...(hostname ? { hostname } : {}) }, () => next(input));
    },
  },
});

/**
 * The sticky cache: workflow runs the worker keeps in memory between their tasks, so that a run's next
 * task does not replay its history. A node waiting for its next command needs no place in it (its
 * history since the last continue-as-new is a few events, cheap to replay on its next command), but a node
 * in the middle of its lifecycle does: its init checks, operation slots and transitions come back to it
 * every few seconds, and a least-recently-used cache smaller than the set of busy runs evicts each one
 * just before it is needed again, so every task would replay.
 *
 * 1,500, measured (bench/idle-memory.ts, README "Idle memory"): an idle node's cached run holds about
 * 75 KiB of the workflow thread's heap and 100-150 KiB of resident memory in all (with Core's copy of
 * its state), on top of about 370 MiB for a worker with none, so 10,000 idle nodes leave the worker at
 * 530-580 MiB. 1,500 holds every run of a 1,000-node fleet accepted at once, with the service's own
 * workflows beside them; the SDK's default, derived from the V8 heap limit, is 2,310 on a 24 GB machine.
 * The peak while runs are brought up is bounded by the heap limit below, not by the cache: with 1,500
 * runs and no limit it was still 1.19-1.22 GiB. A worker for a larger fleet that is busy all at once
 * sets WORKER_MAX_CACHED_WORKFLOWS higher, and gives it the memory.
 */
export const DEFAULT_MAX_CACHED_WORKFLOWS = 1500;

/** WORKER_MAX_CACHED_WORKFLOWS, else the default: 0 turns the cache off (every task replays), 1 is refused by the SDK. */
export function maxCachedWorkflowsFrom(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.WORKER_MAX_CACHED_WORKFLOWS;
  if (raw === undefined || raw === '') return DEFAULT_MAX_CACHED_WORKFLOWS;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0 || value === 1) {
    throw new ConfigError(`WORKER_MAX_CACHED_WORKFLOWS=${raw} must be 0 (no cache) or a whole number of at least 2`);
  }
  return value;
}

/**
 * The workflow thread's V8 heap limit, in MiB: 128 MiB for the thread itself (about 30 in use with no
 * run) and 256 KiB a cached run, three times what an idle node's run holds. 503 MiB for the default cache.
 *
 * Why a limit at all: it is what bounds the peak. V8 lets a heap grow to up to 4 times its live size
 * before a full collection when its limit is 2 GiB or more, and Node gives every thread a quarter of
 * the machine's memory (4 GiB on the 24 GB bench machine); with a limit near 512 MiB the factor is about
 * 1.4. Starting 10,000 idle nodes, every start past the cache evicts a run and leaves its garbage: with
 * the 4 GiB default, the workflow thread's heap reached about 500 MiB in use while it held 145 MiB of
 * live runs, and the worker's RSS went past 1.1 GiB; with this limit the thread held about 235 MiB at
 * the busiest moment seen and the peak RSS was 850-930 MiB. The price is more frequent full
 * collections: bringing up those 10,000 runs took the worker 164-171 CPU s against 124 without the
 * limit; in the fleet bench (300 nodes) the difference was lost in the noise, the worker's CPU per node
 * moving no more than that of the processes the limit does not touch. A thread that does reach its limit ends with ERR_WORKER_OUT_OF_MEMORY and takes the worker
 * down, hence the threefold margin per run.
 */
export function workflowHeapLimitMiB(maxCachedWorkflows: number): number {
  return 128 + Math.ceil(maxCachedWorkflows / 4);
}

/** An operator's own --max-old-space-size (NODE_OPTIONS or the command line) applies to every thread and is left alone. */
function heapLimitGivenToNode(): boolean {
  return [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)].some((arg) => /^--max[-_]old[-_]space[-_]size\b/.test(arg));
}

export async function createWorker(options: {
  connection: NativeConnection;
  namespace: string;
  taskQueue: string;
  activities: Activities;
  /** Runs kept between tasks; WORKER_MAX_CACHED_WORKFLOWS or DEFAULT_MAX_CACHED_WORKFLOWS when absent. */
  maxCachedWorkflows?: number;
}): Promise<Worker> {
  const maxCachedWorkflows = options.maxCachedWorkflows ?? maxCachedWorkflowsFrom();
  // V8 reads its flags when an isolate is made: the workflow thread, made by Worker.create below, takes
  // this limit; the main thread, made long before, keeps its own.
  if (!heapLimitGivenToNode()) v8.setFlagsFromString(`--max-old-space-size=${workflowHeapLimitMiB(maxCachedWorkflows)}`);
  return Worker.create({
    connection: options.connection,
    namespace: options.namespace,
    taskQueue: options.taskQueue,
    workflowBundle: await workflowBundle(),
    activities: options.activities,
    interceptors: { activity: [activityLogContext] },
    maxCachedWorkflows,
    // One V8 context for every run, each run's globals swapped in and out of it (the SDK's default, set
    // here because the figures above depend on it): a context per run would cost megabytes each, not KiB.
    // One workflow thread goes with it; more threads would each hold a context and a heap of their own.
    reuseV8Context: true,
    workflowThreadPoolSize: 1,
    // The SDK's 40 concurrent workflow tasks, held under the cache: it cannot exceed the cache (0 excepted).
    ...(maxCachedWorkflows > 0 && maxCachedWorkflows < 40 ? { maxConcurrentWorkflowTaskExecutions: maxCachedWorkflows } : {}),
  });
}
