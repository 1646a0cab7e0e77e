import { bundleWorkflowCode, NativeConnection, Worker, type ActivityInterceptorsFactory, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import type { Activities } from '../../activities';
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

export async function createWorker(options: {
  connection: NativeConnection;
  namespace: string;
  taskQueue: string;
  activities: Activities;
}): Promise<Worker> {
  return Worker.create({
    connection: options.connection,
    namespace: options.namespace,
    taskQueue: options.taskQueue,
    workflowBundle: await workflowBundle(),
    activities: options.activities,
    interceptors: { activity: [activityLogContext] },
  });
}
