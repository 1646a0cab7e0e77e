/**
 * The yardstick's worker, a process of its own as our worker is: default worker options (ours sets
 * none either), no-op activities, and `operation` held to BASELINE_CAP at once, as our commission hook
 * is held to MAX_CONCURRENT_OPERATIONS.
 */
import { DefaultLogger, NativeConnection, Runtime, Worker, bundleWorkflowCode } from '@temporalio/worker';

async function main(): Promise<void> {
  Runtime.install({ logger: new DefaultLogger('WARN') });
  const cap = Number(process.env.BASELINE_CAP ?? 10);
  let running = 0;
  const waiting: (() => void)[] = [];
  const operation = async () => {
    while (running >= cap) await new Promise<void>((resolve) => waiting.push(resolve));
    running += 1;
    try {
      await Promise.resolve();
    } finally {
      running -= 1;
      waiting.shift()?.();
    }
  };
  const worker = await Worker.create({
    connection: await NativeConnection.connect({ address: process.env.TEMPORAL_ADDRESS! }),
    taskQueue: process.env.TASK_QUEUE ?? 'bench-baseline',
    workflowBundle: await bundleWorkflowCode({
      workflowsPath: require.resolve('./baseline-workflow'),
      logger: { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error: console.error },
    }),
    activities: { noop: async () => undefined, operation },
  });
  console.log('yardstick worker is running');
  await worker.run();
  // SIGTERM shut the worker down; the native connection would keep the process alive.
  process.exit(0);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
