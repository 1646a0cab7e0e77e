/**
 * npm run bench [-- --nodes 1000]: a simulated fleet through announce -> accept -> active -> commission
 * on the real service (dev server, PostgreSQL or PGlite, real agents), then a no-op workflow of the
 * same activity count per node on the same server and worker settings, as the yardstick.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, Worker, bundleWorkflowCode } from '@temporalio/worker';
import knexFactory from 'knex';
import { forEachLimited } from '../src/concurrency';
import { loadConfig } from '../src/config';
import { Fleet } from '../src/fleet/simulator';
import { startService } from '../src/service';
import { startDevServer } from '../src/temporal/dev-server';
import { nodeWorkflowId } from '../workflows/definitions';
import { createTestDatabase, postgresAvailable } from '../src/dev/scratch-database';
import { freePort } from '../src/dev/free-port';

const { values } = parseArgs({ options: { nodes: { type: 'string', default: process.env.BENCH_NODES ?? '1000' } } });
const NODES = Number(values.nodes);
const log = (m: string) => console.log(`${new Date().toISOString().slice(11, 19)} ${m}`);

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}
function summary(values: number[]) {
  const sorted = [...values].sort((a, b) => a - b);
  return { count: sorted.length, p50_ms: percentile(sorted, 50), p99_ms: percentile(sorted, 99), max_ms: sorted.at(-1) ?? NaN };
}

async function main(): Promise<void> {
  process.env.LOG_LEVEL ??= 'warn';
  Runtime.install({ logger: new DefaultLogger('WARN'), shutdownSignals: [] });
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'nl-bench-'));
  const cliPath = process.env.TEMPORAL_CLI_PATH ?? path.join(__dirname, '..', '.tools', 'temporal-v1.5.1', 'temporal');
  const devServer = await startDevServer({ cliPath, dataDir: path.join(root, 'temporal'), port: await freePort(), uiPort: 0, headless: true, namespace: 'default' });
  const database = (await postgresAvailable()) ? await createTestDatabase() : undefined;
  const config = loadConfig({
    ...process.env,
    DATA_DIR: path.join(root, 'data'),
    PORT: '0',
    TEMPORAL_ADDRESS: devServer.address,
    TASK_QUEUE: 'bench-nodes',
    DATABASE_URL: database?.url ?? '',
    LOG_LEVEL: 'warn',
  });
  const service = await startService(config, 'all');
  const api = async (method: string, p: string, body?: unknown) => {
    const res = await fetch(`${service.apiUrl}${p}`, {
      method,
      headers: { authorization: `Bearer ${service.apiToken}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as any, headers: res.headers };
  };
  log(`service up; ${database ? 'PostgreSQL' : 'PGlite'}, cap ${config.maxConcurrentOperations}; starting ${NODES} agents`);

  const fleet = await Fleet.start({ serverUrl: service.apiUrl!, count: NODES, prefix: 'bench', rootDir: path.join(root, 'fleet'), network: 200, announceIntervalMs: 10_000 });
  const names = fleet.hostnames;
  const t0 = Date.now();
  for (;;) {
    // Lists are paged: the total header counts them all (exactly, below 10,000).
    const pending = Number((await api('GET', '/api/v1/unmanaged_nodes?limit=1')).headers.get('x-total-count'));
    if (pending >= NODES) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  const announced = Date.now();
  log(`all announced in ${announced - t0} ms; accepting`);

  await forEachLimited(names, 16, async (n) => {
    const res = await api('POST', `/api/v1/unmanaged_nodes/${n}/accept`, { hostname: n, fingerprint: fleet.fingerprint(n) });
    if (res.status !== 202) throw new Error(`accept ${n}: ${res.status} ${JSON.stringify(res.body)}`);
  });
  const accepted = Date.now();
  const knex = knexFactory({ client: 'pg', connection: database?.url ?? '', pool: { min: 0, max: 2 } });
  const countIn = async (state: string) => {
    return Number((await api('GET', `/api/v1/nodes?state=${state}&limit=1`)).headers.get('x-total-count'));
  };
  while ((await countIn('active')) < NODES) await new Promise((r) => setTimeout(r, 500));
  const active = Date.now();
  log(`all active ${active - accepted} ms after the last accept; commissioning`);

  const submitted = Date.now();
  const bulk = await api('POST', '/api/v1/commission/nodes', { nodes: names, extra_vars: { bench: true } });
  if (bulk.status !== 202) throw new Error(`commission: ${bulk.status} ${JSON.stringify(bulk.body)}`);
  let task: any;
  for (;;) {
    task = (await api('GET', `/api/v1/tasks/${bulk.body.task_id}?node_limit=${NODES}`)).body;
    if (task.status === 'succeeded' || task.status === 'failed') break;
    await new Promise((r) => setTimeout(r, 500));
  }
  const commissioned = Date.now();
  log(`commission ${task.status} in ${commissioned - submitted} ms`);

  // Latencies from the service's own records.
  const activeAt = new Map<string, number>();
  const events = database
    ? await knex('node_events').select('hostname', 'at').where({ event: 'initialized' })
    : [];
  for (const e of events) activeAt.set(e.hostname, new Date(e.at).getTime());
  const readyToActive = names.filter((n) => fleet.readyAt.has(n) && activeAt.has(n)).map((n) => activeAt.get(n)! - fleet.readyAt.get(n)!);
  const opLatency = task.nodes.map((n: any) => new Date(n.finished_at).getTime() - new Date(n.created_at).getTime());
  const opService = task.nodes.map((n: any) => new Date(n.finished_at).getTime() - new Date(n.started_at).getTime());

  // The yardstick: how many activities one node cost, as no-op activities on the same server and worker defaults.
  const client = new Client({ connection: await Connection.connect({ address: devServer.address }) });
  const sample = await client.workflow.getHandle(nodeWorkflowId(names[0]!)).fetchHistory();
  // Local activities (database bookkeeping) count as activities of the shape too: the yardstick runs
  // every one of them as a regular activity.
  const perNode = (sample.events ?? []).filter((e) => e.activityTaskScheduledEventAttributes || e.markerRecordedEventAttributes?.markerName === 'core_local_activity').length;
  const worker = await Worker.create({
    connection: await NativeConnection.connect({ address: devServer.address }),
    taskQueue: 'bench-baseline',
    workflowBundle: await bundleWorkflowCode({ workflowsPath: require.resolve('./baseline-workflow'), logger: { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error: console.error } }),
    activities: { noop: async () => undefined },
  });
  const baseline = await worker.runUntil(async () => {
    const started = Date.now();
    const handles = [];
    for (let i = 0; i < NODES; i += 50) {
      handles.push(...(await Promise.all(Array.from({ length: Math.min(50, NODES - i) }, (_, j) =>
        client.workflow.start('baselineShape', { taskQueue: 'bench-baseline', workflowId: `baseline-${i + j}`, args: [perNode] })))));
    }
    await Promise.all(handles.map((h) => h.result()));
    return Date.now() - started;
  });

  const ours = commissioned - announced;
  const result = {
    at: new Date().toISOString(),
    machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model.trim(), memory_gb: Math.round(os.totalmem() / 2 ** 30) },
    nodes: NODES,
    database: database ? 'postgresql' : 'pglite',
    max_concurrent_operations: config.maxConcurrentOperations,
    phases_ms: { announce: announced - t0, accept: accepted - announced, accept_to_all_active: active - accepted, commission: commissioned - submitted },
    first_accept_to_all_commissioned_ms: ours,
    nodes_per_second: +(NODES / (ours / 1000)).toFixed(2),
    ready_to_active: summary(readyToActive),
    commission_submitted_to_done: summary(opLatency),
    commission_started_to_done: summary(opService),
    commission_task: { status: task.status, succeeded: task.progress.succeeded, failed: task.progress.failed },
    agents_max_concurrent_operations: fleet.gauge.maxRunning,
    agents_max_on_one_node: fleet.gauge.maxOnOneNode,
    baseline: { activities_per_node: perNode, total_ms: baseline, nodes_per_second: +(NODES / (baseline / 1000)).toFixed(2) },
    ratio_to_baseline: +(baseline / ours).toFixed(3),
  };
  const file = path.join(__dirname, 'results', `${result.at.replace(/[:.]/g, '-')}-${NODES}.json`);
  fs.writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  console.log(JSON.stringify(result, null, 2));
  log(`written to ${path.relative(process.cwd(), file)}`);

  await knex.destroy();
  await fleet.stop();
  await service.stop();
  await database?.drop();
  await devServer.stop();
  process.exit(0);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
