import { Context } from '@temporalio/activity';

/** Often enough for PRESETS' heartbeat timeout (workflows/activity-options.ts), cheap for the worker. */
const HEARTBEAT_EVERY_MS = 1_000;

/**
 * Wraps a remote activity so it heartbeats while it works. The heartbeat is how the server learns that
 * the worker running a step has died (kill -9): within the heartbeat timeout instead of the step's whole
 * start-to-close timeout. Local activities have no heartbeat and run unwrapped.
 */
export function keepAlive<A extends unknown[], R>(work: (...args: A) => Promise<R>): (...args: A) => Promise<R> {
  return async (...args: A) => {
    const context = Context.current();
    if (context.info.isLocal) return work(...args);
    // No beat at the start: the timeout runs from the start until the first one, and most steps end
    // within a second, so they cost no heartbeat at all.
    const timer = setInterval(() => context.heartbeat(), HEARTBEAT_EVERY_MS);
    try {
      return await work(...args);
    } finally {
      clearInterval(timer);
    }
  };
}
