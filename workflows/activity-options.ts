/**
 * How workflows call activities: the named presets, the one proxy for database bookkeeping, and the one
 * way a failure becomes the text an operator reads. Every workflow module takes these from here.
 */
import { ActivityFailure, ApplicationFailure } from '@temporalio/common';
import { proxyActivities, proxyLocalActivities, type ActivityOptions } from '@temporalio/workflow';
import type { Activities } from '../activities';

/**
 * A worker that dies (kill -9) stops heartbeating; the server notices within this time and retries the
 * step elsewhere, instead of waiting out a start-to-close timeout of minutes. Every remote activity that
 * can take more than a moment heartbeats (activities/heartbeat.ts).
 */
const DEAD_WORKER_DETECTED_WITHIN = '10s';

/** Failures that a retry cannot mend: a changed key, a missing node, a refusal. */
const NOT_RETRYABLE = ['PinnedKeyMismatch', 'HostnameMismatch', 'NotFound', 'BadRequest', 'DriverError', 'BootValidationFailed', 'NoAgent'];

/** The presets, by what the call does. */
export const PRESETS = {
  /** Bookkeeping in our own database: retried until the database answers (an outage delays, never fails). */
  database: {
    startToCloseTimeout: '30s',
    retry: { initialInterval: '1s', maximumInterval: '30s' },
  },
  /** One step on a node's agent. Agent calls time out in seconds; a short retry rides out a blip. */
  agentStep: {
    startToCloseTimeout: '1m',
    heartbeatTimeout: DEAD_WORKER_DETECTED_WITHIN,
    retry: { maximumAttempts: 2, initialInterval: '1s', nonRetryableErrorTypes: NOT_RETRYABLE },
  },
  /** A reachability probe: one try, its answer is the data. */
  probe: {
    startToCloseTimeout: '1m',
    heartbeatTimeout: DEAD_WORKER_DETECTED_WITHIN,
    retry: { maximumAttempts: 1 },
  },
  /** A BMC or a boot source: short retries for blips; a refusal is final. */
  hardware: {
    startToCloseTimeout: '2m',
    heartbeatTimeout: DEAD_WORKER_DETECTED_WITHIN,
    retry: { maximumAttempts: 3, initialInterval: '2s', nonRetryableErrorTypes: NOT_RETRYABLE },
  },
  /** Long sweeps and fan-outs over many nodes: they heartbeat their progress, and a retry resumes. */
  sweep: {
    startToCloseTimeout: '10m',
    heartbeatTimeout: '1m',
    retry: { initialInterval: '1s', maximumInterval: '30s' },
  },
} satisfies Record<string, ActivityOptions>;

/**
 * A step of a bulk operation waits for an unreachable node within the operation's own timeout
 * (contiv: the node may come back); each attempt is still bounded and heartbeats.
 */
export function operationStepOptions(operationTimeoutMs: number): ActivityOptions {
  return {
    startToCloseTimeout: '5m',
    heartbeatTimeout: DEAD_WORKER_DETECTED_WITHIN,
    scheduleToCloseTimeout: operationTimeoutMs,
    retry: { initialInterval: '2s', maximumInterval: '30s', nonRetryableErrorTypes: NOT_RETRYABLE },
  };
}

/** The database, as local activities: they run beside the workflow without a server round trip. */
export const db = proxyLocalActivities<Activities>(PRESETS.database);
export const onAgent = proxyActivities<Activities>(PRESETS.agentStep);
export const probe = proxyActivities<Activities>(PRESETS.probe);
export const hardware = proxyActivities<Activities>(PRESETS.hardware);
export const sweeps = proxyActivities<Activities>(PRESETS.sweep);

/** What went wrong, in the words of the activity that failed (not "Activity task failed"). */
export function failureMessage(err: unknown): string {
  if (err instanceof ActivityFailure && err.cause) return err.cause.message;
  return err instanceof Error ? err.message : String(err);
}

/** A domain refusal that crossed from an activity: the ApplicationFailure carrying its type and details. */
export function refusalOf(err: unknown): ApplicationFailure | undefined {
  if (err instanceof ActivityFailure && err.cause instanceof ApplicationFailure) return err.cause;
  return undefined;
}
