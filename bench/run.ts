/**
 * npm run bench [-- --engine dev|cluster|both] [--nodes 1000[,5000]] [--lifecycle-only] [--announce-interval S]: a simulated fleet through
 * announce -> accept -> active -> commission on each Temporal engine in turn, the API and the worker each
 * a process of their own (so /proc splits the CPU), then the yardstick on the same engine. Writes one
 * JSON per node count under bench/results/ and prints the engines side by side.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { randomBytes } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import knexFactory from 'knex';
import { forEachLimited } from '../src/concurrency';
import { loadConfig } from '../src/config';
import { createTestDatabase, postgresAvailable } from '../src/dev/scratch-database';
import { freePort } from '../src/dev/free-port';
import { Fleet } from '../src/fleet/simulator';
import { bulkWorkflowId, nodeWorkflowId } from '../workflows/definitions';
import { log, machine, summary, table, writeResult, type Summary } from './bench-support';
import { startBenchEngine, startChild, type BenchEngine, type EngineName } from './bench-engines';
import { CpuSampler, isPostgres, postgresBackendOf } from './proc-cpu';

const { values } = parseArgs({
  options: {
    engine: { type: 'string', default: process.env.BENCH_ENGINE ?? 'both' },
    nodes: { type: 'string', default: process.env.BENCH_NODES ?? '1000' },
    // Prints the side-by-side table of result files already written (comma-separated), runs nothing.
    table: { type: 'string' },
    // The bulk lifecycle only: no one-by-one half fleet, no yardstick (for node counts whose whole run does not fit).
    'lifecycle-only': { type: 'boolean', default: false },
    // Seconds between an agent's announcements (its heartbeat). The API's cost grows with nodes / interval:
    // a larger fleet on this machine keeps the 1000-node run's heartbeat rate with a longer interval.
    'announce-interval': { type: 'string', default: '10' },
  },
});
if (!['dev', 'cluster', 'both'].includes(values.engine)) throw new Error(`--engine must be dev, cluster or both, not ${values.engine}`);
const ENGINES: EngineName[] = values.engine === 'both' ? ['dev', 'cluster'] : [values.engine as EngineName];
const NODE_COUNTS = values.nodes.split(',').map((n) => {
  const count = Number(n);
  if (!Number.isInteger(count) || count < 2) throw new Error(`--nodes: ${n} is not a node count (2 or more)`);
  return count;
});
const LIFECYCLE_ONLY = values['lifecycle-only'] ?? false;
const ANNOUNCE_INTERVAL_MS = Number(values['announce-interval']) * 1000;
if (!Number.isFinite(ANNOUNCE_INTERVAL_MS) || ANNOUNCE_INTERVAL_MS < 1000) throw new Error(`--announce-interval: ${values['announce-interval']} is not a number of seconds (1 or more)`);
const PROJECTED_NODES = 100_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const round = (n: number, digits = 2) => Math.round(n * 10 ** digits) / 10 ** digits;
const rate = (nodes: number, ms: number) => round(nodes / (ms / 1000));

type CpuGroups = Record<string, number>;
const minus = (a: CpuGroups, b: CpuGroups): CpuGroups => Object.fromEntries(Object.entries(a).map(([k, v]) => [k, round(v - (b[k] ?? 0), 2)]));
const perNode = (cpu: CpuGroups, nodes: number): CpuGroups => Object.fromEntries(Object.entries(cpu).map(([k, v]) => [k, round(v / nodes, 4)]));

const GROUP = {
  server: 'temporal server',
  api: 'api (role api)',
  worker: 'worker (role worker)',
  postgres: "postgresql (this run's databases)",
  yardstickWorker: 'yardstick worker',
  bench: 'bench process (simulated agents, driver)',
  postgresRest: 'postgresql (other databases and shared processes: not attributable)',
} as const;
/** The service's own processes: what a user sizes. The simulated agents and other work on the machine are not. */
const SERVICE_GROUPS = [GROUP.server, GROUP.api, GROUP.worker, GROUP.postgres];

interface EngineRun {
  engine: string;
  engine_details: Record<string, unknown>;
  nodes: number;
  announce_interval_ms?: number;
  phases_ms: Record<string, number>;
  nodes_per_second: Record<string, number>;
  ready_to_active_bulk: Summary;
  commission_submitted_to_done: Summary;
  commission_started_to_done: Summary;
  commission_task: { status: string; succeeded: number; failed: number };
  bulk_accept_failed_rows: { count: number; reaccepted_one_by_one: boolean; sample: { hostname: string; error: string }[] };
  one_by_one: Record<string, number> | null;
  agents_max_concurrent_operations: number;
  cpu_seconds: { lifecycle: CpuGroups; one_by_one_half: CpuGroups | null; yardstick: CpuGroups | null };
  cpu_seconds_per_node: { lifecycle: CpuGroups; lifecycle_service_total: number; yardstick: CpuGroups | null; yardstick_service_total: number | null };
  projection_100k: Record<string, unknown>;
  yardstick: Record<string, unknown> | null;
  ratio_to_yardstick: number | null;
}

async function runEngine(engineName: EngineName, nodes: number, root: string): Promise<EngineRun> {
  const dir = path.join(root, `${engineName}-${nodes}`);
  fs.mkdirSync(dir, { recursive: true });
  const stack: (() => Promise<void>)[] = [];
  const pids: { api?: number; worker?: number; yardstick?: number } = {};
  let engine: BenchEngine | undefined;
  const ourDatabases: string[] = [];
  const sampler = new CpuSampler([
    { name: GROUP.server, roots: () => [engine?.serverPid()] },
    { name: GROUP.api, roots: () => [pids.api] },
    { name: GROUP.worker, roots: () => [pids.worker] },
    { name: GROUP.yardstickWorker, roots: () => [pids.yardstick] },
    { name: GROUP.bench, roots: () => [process.pid] },
    { name: GROUP.postgres, matches: postgresBackendOf(() => ourDatabases) },
    { name: GROUP.postgresRest, matches: isPostgres },
  ]);
  try {
    engine = await startBenchEngine(engineName, dir);
    const started = engine;
    stack.push(() => started.stop());
    ourDatabases.push(...engine.databases);
    const database = await createTestDatabase();
    stack.push(() => database.drop());
    ourDatabases.push(new URL(database.url).pathname.slice(1));
    sampler.start();
    stack.push(async () => sampler.stop());

    const port = await freePort();
    const apiToken = randomBytes(24).toString('hex');
    const env = {
      DATA_DIR: path.join(dir, 'data'),
      DATABASE_URL: database.url,
      TEMPORAL_ADDRESS: engine.address,
      TASK_QUEUE: 'bench-nodes',
      LOG_LEVEL: 'warn',
      API_TOKEN: apiToken,
      PORT: String(port),
      ENGINE: 'dev',
      // A node is missing after three heartbeats not heard, at least the default 60 s.
      DISAPPEAR_AFTER: `${Math.max(60, (3 * ANNOUNCE_INTERVAL_MS) / 1000)}s`,
    };
    const config = loadConfig({ ...process.env, ...env });
    // The API first: it makes DATA_DIR's server identity and secrets key, which the worker then reads.
    const api = await startChild('src/main.ts', ['--role', 'api'], env, /is running/, path.join(dir, 'api.log'));
    stack.push(() => api.stop());
    pids.api = api.pid;
    const worker = await startChild('src/main.ts', ['--role', 'worker'], env, /is running/, path.join(dir, 'worker.log'));
    stack.push(() => worker.stop());
    pids.worker = worker.pid;
    const apiUrl = `http://127.0.0.1:${port}`;
    const call = async (method: string, p: string, body?: unknown) => {
      const res = await fetch(`${apiUrl}${p}`, {
        method,
        headers: { authorization: `Bearer ${apiToken}`, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: res.status, body: (await res.json()) as any, headers: res.headers };
    };
    // Polls ride out a stalled moment (1000 agents and the driver share this process's event loop): -1 is "not yet".
    const total = async (p: string) => {
      try {
        return Number((await call('GET', p)).headers.get('x-total-count'));
      } catch (err) {
        log(`${engineName}: poll ${p}: ${(err as Error).message}; retrying`);
        return -1;
      }
    };
    const waitFor = async (what: string, done: () => Promise<boolean>, timeoutMs = 3_600_000) => {
      const deadline = Date.now() + timeoutMs;
      while (!(await done())) {
        if (Date.now() > deadline) throw new Error(`${engineName}: ${what} not within ${timeoutMs} ms`);
        await sleep(250);
      }
    };
    const waitTask = async (taskId: string) => {
      for (;;) {
        const task = (await call('GET', `/api/v1/tasks/${taskId}?node_limit=${nodes}`).catch(() => ({ body: { status: 'unknown' } }))).body;
        if (task.status === 'succeeded' || task.status === 'failed') return task;
        await sleep(250);
      }
    };
    log(`${engineName}: Temporal at ${engine.address}, API ${apiUrl} (pid ${api.pid}), worker pid ${worker.pid}; starting ${nodes} agents`);

    // The fleet accepted in bulk, then commissioned: the lifecycle, measured for throughput, latency and CPU.
    const cpuStart = sampler.totals();
    const fleet = await Fleet.start({ serverUrl: apiUrl, count: nodes, prefix: 'bench', rootDir: path.join(dir, 'fleet'), network: 200, announceIntervalMs: ANNOUNCE_INTERVAL_MS });
    stack.push(() => fleet.stop());
    const names = fleet.hostnames;
    const t0 = Date.now();
    await waitFor('announcements', async () => (await total('/api/v1/unmanaged_nodes?limit=1')) >= nodes);
    const announced = Date.now();
    log(`${engineName}: all announced ${announced - t0} ms after the fleet was up; accepting all in one request`);

    const acceptSubmitted = Date.now();
    const accept = await call('POST', '/api/v1/unmanaged_nodes/accept', { nodes: names.map((n) => ({ hostname: n, fingerprint: fleet.fingerprint(n) })) });
    if (accept.status !== 202) throw new Error(`bulk accept: ${accept.status} ${JSON.stringify(accept.body)}`);
    // Every row of the bulk task ends with its node active or failed; failed rows (seen under load) are
    // accepted again one by one, so the lifecycle goes on, and reported.
    const acceptTask = await waitTask(accept.body.task_id);
    const acceptFailed: { hostname: string; error: string }[] = acceptTask.nodes.filter((n: any) => n.status === 'failed').map((n: any) => ({ hostname: n.hostname, error: n.error }));
    const acceptTaskDone = Date.now();
    if (acceptFailed.length > 0) log(`${engineName}: ${acceptFailed.length} rows of the bulk accept failed (${acceptFailed[0]!.error}); accepting them again one by one`);
    for (const { hostname } of acceptFailed) {
      const res = await call('POST', `/api/v1/unmanaged_nodes/${hostname}/accept`, { hostname, fingerprint: fleet.fingerprint(hostname) });
      if (res.status !== 202 && res.status !== 409) throw new Error(`accept ${hostname} again: ${res.status} ${JSON.stringify(res.body)}`);
    }
    await waitFor('all active', async () => (await total('/api/v1/nodes?state=active&limit=1')) >= nodes);
    const active = Date.now();
    log(`${engineName}: all active ${active - acceptSubmitted} ms after the bulk accept (task ${acceptTask.status}); commissioning`);

    const commissionSubmitted = Date.now();
    const bulk = await call('POST', '/api/v1/commission/nodes', { nodes: names, extra_vars: { bench: true } });
    if (bulk.status !== 202) throw new Error(`commission: ${bulk.status} ${JSON.stringify(bulk.body)}`);
    const task = await waitTask(bulk.body.task_id);
    const commissioned = Date.now();
    const cpuLifecycle = minus(sampler.totals(), cpuStart);
    log(`${engineName}: commission ${task.status} in ${commissioned - commissionSubmitted} ms`);

    const knex = knexFactory({ client: 'pg', connection: database.url, pool: { min: 0, max: 1 } });
    stack.push(() => knex.destroy());
    const eventTimes = async (event: string, prefix: string) =>
      new Map(
        ((await knex('node_events').select('hostname', 'at').where({ event }).andWhereLike('hostname', `${prefix}-%`)) as { hostname: string; at: Date }[]).map(
          (e) => [e.hostname, new Date(e.at).getTime()] as const,
        ),
      );
    const acceptedAt = await eventTimes('accept', 'bench');
    const activeAt = await eventTimes('initialized', 'bench');
    const lastAccept = Math.max(...acceptedAt.values());
    const firstAccept = Math.min(...acceptedAt.values());
    const readyToActive = names.filter((n) => fleet.readyAt.has(n) && activeAt.has(n)).map((n) => activeAt.get(n)! - fleet.readyAt.get(n)!);

    // Accepted one by one: a second, separate fleet of half the size, on the same service after the first.
    const oneByOne = LIFECYCLE_ONLY
      ? null
      : await (async () => {
          const half = Math.max(1, Math.floor(nodes / 2));
          const cpuHalfStart = sampler.totals();
          const single = await Fleet.start({ serverUrl: apiUrl, count: half, prefix: 'single', rootDir: path.join(dir, 'single'), network: 201, announceIntervalMs: ANNOUNCE_INTERVAL_MS });
          stack.push(() => single.stop());
          await waitFor('the half announced', async () => (await total('/api/v1/unmanaged_nodes?limit=1')) >= half);
          const singleStart = Date.now();
          let unavailable = 0;
          let connectionLost = 0;
          // Each request's time to its answer (202, 409 or 503): what a user waits for at the prompt.
          const answerMs: number[] = [];
          await forEachLimited(single.hostnames, 16, async (n) => {
            let answerLost = false;
            let lostInARow = 0;
            for (;;) {
              let res;
              const sent = Date.now();
              try {
                res = await call('POST', `/api/v1/unmanaged_nodes/${n}/accept`, { hostname: n, fingerprint: single.fingerprint(n) });
              } catch (err) {
                // The connection dropped before an answer (a keep-alive socket closed while this process, which
                // also carries the agents, was stalled): a user sends it again, as here.
                log(`${engineName}: accept ${n}: ${(err as Error).message}; sending it again`);
                connectionLost += 1;
                answerLost = true;
                // A stall drops one connection now and then; five in a row is an API that is gone.
                if (++lostInARow >= 5) throw err;
                continue;
              }
              answerMs.push(Date.now() - sent);
              if (res.status === 202) return;
              // After a lost answer, a 409 (being accepted, or accepted) says the first request landed.
              if (answerLost && res.status === 409) return;
              // 503: Temporal did not take the accept in time, and nothing was done: the API says so, a user retries.
              if (res.status !== 503) throw new Error(`accept ${n}: ${res.status} ${JSON.stringify(res.body)}`);
              unavailable += 1;
            }
          });
          const singleAccepted = Date.now();
          // The first fleet is commissioned by now: the active ones are this half.
          await waitFor('the half active', async () => (await total('/api/v1/nodes?state=active&limit=1')) >= half);
          const singleActive = Date.now();
          const cpuHalf = minus(sampler.totals(), cpuHalfStart);
          await single.stop();
          log(`${engineName}: ${half} accepted one by one in ${singleAccepted - singleStart} ms, all active ${singleActive - singleStart} ms after the first`);
          const answers = summary(answerMs);
          return {
            cpu: cpuHalf,
            result: {
              nodes: half,
              parallel_requests: 16,
              answered_503_then_retried: unavailable,
              connection_lost_then_retried: connectionLost,
              accept_ms: singleAccepted - singleStart,
              accept_nodes_per_second: rate(half, singleAccepted - singleStart),
              answer_p50_ms: answers.p50_ms,
              answer_p99_ms: answers.p99_ms,
              answer_max_ms: answers.max_ms,
              first_accept_to_all_active_ms: singleActive - singleStart,
              to_active_nodes_per_second: rate(half, singleActive - singleStart),
            },
          };
        })();

    const yard = LIFECYCLE_ONLY
      ? null
      : await (async () => {
          // The yardstick's shape: a node's activities (local ones included) plus its share of the two bulk tasks' own.
          const client = new Client({ connection: await Connection.connect({ address: engine.address }) });
          stack.push(() => client.connection.close());
          const activitiesIn = async (workflowId: string) =>
            ((await client.workflow.getHandle(workflowId).fetchHistory()).events ?? []).filter(
              (e) => e.activityTaskScheduledEventAttributes || e.markerRecordedEventAttributes?.markerName === 'core_local_activity',
            ).length;
          const nodeActivities = await activitiesIn(nodeWorkflowId(names[0]!));
          const bulkActivities = (await activitiesIn(bulkWorkflowId(accept.body.task_id))) + (await activitiesIn(bulkWorkflowId(bulk.body.task_id)));
          const shape = nodeActivities + Math.round(bulkActivities / nodes);
          // Our nodes' workflows started as the bulk accept reached them: the yardstick starts its at that rate.
          const startRate = nodes / Math.max(1, (lastAccept - firstAccept) / 1000);

          const yardstickWorker = await startChild(
            'bench/baseline-worker.ts',
            [],
            { TEMPORAL_ADDRESS: engine.address, TASK_QUEUE: 'bench-baseline', BASELINE_CAP: String(config.maxConcurrentOperations) },
            /is running/,
            path.join(dir, 'yardstick-worker.log'),
          );
          stack.push(() => yardstickWorker.stop());
          pids.yardstick = yardstickWorker.pid;
          const cpuYardStart = sampler.totals();
          const yardStarted = Date.now();
          const handles = [];
          for (let i = 0; i < nodes; i++) {
            const due = yardStarted + (i / startRate) * 1000;
            if (due > Date.now()) await sleep(due - Date.now());
            handles.push(client.workflow.start('baselineShape', { taskQueue: 'bench-baseline', workflowId: `baseline-${i}`, args: [shape] }));
          }
          await Promise.all((await Promise.all(handles)).map((h) => h.result()));
          const yardMs = Date.now() - yardStarted;
          const cpuYard = minus(sampler.totals(), cpuYardStart);
          log(`${engineName}: yardstick ${yardMs} ms`);
          return { ms: yardMs, cpu: cpuYard, shape, nodeActivities, bulkActivities, startRate };
        })();

    const ours = commissioned - acceptSubmitted;
    const serviceTotal = (cpu: CpuGroups) => round(SERVICE_GROUPS.reduce((s, g) => s + (cpu[g] ?? 0), 0) / nodes, 4);
    const yardService = yard && { ...yard.cpu, [GROUP.worker]: yard.cpu[GROUP.yardstickWorker] ?? 0, [GROUP.api]: 0 };
    const lifecyclePerNode = perNode(cpuLifecycle, nodes);
    const throughput = rate(nodes, ours);
    return {
      engine: engineName,
      engine_details: engine.details,
      nodes,
      announce_interval_ms: ANNOUNCE_INTERVAL_MS,
      phases_ms: {
        announce: announced - t0,
        accept_bulk_submitted_to_last_accepted: lastAccept - acceptSubmitted,
        accept_bulk_submitted_to_all_active: active - acceptSubmitted,
        accept_bulk_submitted_to_task_done: acceptTaskDone - acceptSubmitted,
        commission: commissioned - commissionSubmitted,
        first_accept_to_all_commissioned: ours,
      },
      nodes_per_second: {
        announce: rate(nodes, announced - t0),
        accept_bulk: rate(nodes, lastAccept - acceptSubmitted),
        accept_bulk_to_active: rate(nodes, active - acceptSubmitted),
        commission: rate(nodes, commissioned - commissionSubmitted),
        whole_lifecycle: throughput,
      },
      ready_to_active_bulk: summary(readyToActive),
      commission_submitted_to_done: summary(task.nodes.map((n: any) => new Date(n.finished_at).getTime() - new Date(n.created_at).getTime())),
      commission_started_to_done: summary(task.nodes.map((n: any) => new Date(n.finished_at).getTime() - new Date(n.started_at).getTime())),
      commission_task: { status: task.status, succeeded: task.progress.succeeded, failed: task.progress.failed },
      bulk_accept_failed_rows: { count: acceptFailed.length, reaccepted_one_by_one: true, sample: acceptFailed.slice(0, 5) },
      one_by_one: oneByOne?.result ?? null,
      agents_max_concurrent_operations: fleet.gauge.maxRunning,
      cpu_seconds: { lifecycle: cpuLifecycle, one_by_one_half: oneByOne?.cpu ?? null, yardstick: yard?.cpu ?? null },
      cpu_seconds_per_node: {
        lifecycle: lifecyclePerNode,
        lifecycle_service_total: serviceTotal(cpuLifecycle),
        yardstick: yard && perNode(yard.cpu, nodes),
        yardstick_service_total: yardService && serviceTotal(yardService),
      },
      projection_100k: {
        note: `A projection, not a measurement: this run's CPU seconds per node times ${PROJECTED_NODES.toLocaleString('en')}, and its whole-lifecycle rate, both taken as linear.`,
        cpu_seconds_by_process: Object.fromEntries(SERVICE_GROUPS.map((g) => [g, Math.round((lifecyclePerNode[g] ?? 0) * PROJECTED_NODES)])),
        cpu_seconds_service_total: Math.round(serviceTotal(cpuLifecycle) * PROJECTED_NODES),
        wall_seconds_at_this_rate: Math.round(PROJECTED_NODES / throughput),
        cores_busy_at_this_rate: round(serviceTotal(cpuLifecycle) * throughput, 2),
      },
      yardstick: yard && {
        how:
          'One no-op workflow per node on the same engine, with as many activities as a node here had (its workflow history: activities and ' +
          "local activities, plus its share of the bulk accept's and the bulk commission's own), the last one held to the same cap as our operations " +
          '(MAX_CONCURRENT_OPERATIONS, in its worker), its worker a process of its own with default options as ours; the same number of workflows, ' +
          'started at the rate our bulk accept reached the nodes (first to last accept event). It runs after ours, while the fleet still announces. ' +
          'Ratio = yardstick time / our first accept -> all commissioned time (= our nodes/s over the yardstick nodes/s); above 1, ours beats its bare activity count.',
        activities_per_node: yard.shape,
        node_workflow_activities: yard.nodeActivities,
        bulk_workflows_activities: yard.bulkActivities,
        start_rate_per_second: round(yard.startRate),
        cap: config.maxConcurrentOperations,
        total_ms: yard.ms,
        nodes_per_second: rate(nodes, yard.ms),
      },
      ratio_to_yardstick: yard && round(yard.ms / ours, 3),
    };
  } finally {
    while (stack.length > 0) await stack.pop()!().catch((err: unknown) => log(`cleanup: ${(err as Error).message}`));
  }
}

function sideBySide(runs: EngineRun[]): string {
  const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  const rows: (string | number)[][] = [['', ...runs.map((r) => `${r.engine} ${r.nodes}`)]];
  const row = (label: string, f: (r: EngineRun) => string | number) => rows.push([label, ...runs.map(f)]);
  row('announce (agents every N s)', (r) => `${s(r.phases_ms.announce!)} (every ${(r.announce_interval_ms ?? 10_000) / 1000} s)`);
  row('bulk accept -> last accepted', (r) => `${s(r.phases_ms.accept_bulk_submitted_to_last_accepted!)} (${r.nodes_per_second.accept_bulk}/s)`);
  row('bulk accept -> all active', (r) => `${s(r.phases_ms.accept_bulk_submitted_to_all_active!)} (${r.nodes_per_second.accept_bulk_to_active}/s)`);
  row('bulk accept rows failed (then one by one)', (r) => r.bulk_accept_failed_rows?.count ?? 'n/a');
  row('commission all', (r) => `${s(r.phases_ms.commission!)} (${r.nodes_per_second.commission}/s)`);
  row('first accept -> all commissioned', (r) => `${s(r.phases_ms.first_accept_to_all_commissioned!)} (${r.nodes_per_second.whole_lifecycle}/s)`);
  const notRun = 'not run (--lifecycle-only)';
  row('one by one: accept half', (r) => (r.one_by_one ? `${s(r.one_by_one.accept_ms!)} (${r.one_by_one.accept_nodes_per_second}/s)` : notRun));
  row('one by one: answer p50/p99/max', (r) =>
    !r.one_by_one
      ? notRun
      : r.one_by_one.answer_p50_ms === undefined
        ? 'not recorded (older run)'
        : `${s(r.one_by_one.answer_p50_ms)} / ${s(r.one_by_one.answer_p99_ms!)} / ${s(r.one_by_one.answer_max_ms!)}`,
  );
  row('one by one: -> all active', (r) => (r.one_by_one ? `${s(r.one_by_one.first_accept_to_all_active_ms!)} (${r.one_by_one.to_active_nodes_per_second}/s)` : notRun));
  row('ready -> active p50/p99/max', (r) => `${s(r.ready_to_active_bulk.p50_ms)} / ${s(r.ready_to_active_bulk.p99_ms)} / ${s(r.ready_to_active_bulk.max_ms)}`);
  row('commission p50/p99 (submitted)', (r) => `${s(r.commission_submitted_to_done.p50_ms)} / ${s(r.commission_submitted_to_done.p99_ms)}`);
  for (const g of SERVICE_GROUPS) row(`CPU s/node: ${g}`, (r) => r.cpu_seconds_per_node.lifecycle[g] ?? 0);
  row('CPU s/node: service total', (r) => r.cpu_seconds_per_node.lifecycle_service_total);
  row('CPU s/node: simulated agents', (r) => r.cpu_seconds_per_node.lifecycle[GROUP.bench] ?? 0);
  row(`projection: CPU s for ${PROJECTED_NODES / 1000}k nodes`, (r) => String(r.projection_100k.cpu_seconds_service_total));
  row('yardstick (s, CPU s/node)', (r) => (r.yardstick ? `${s(r.yardstick.total_ms as number)}, ${r.cpu_seconds_per_node.yardstick_service_total}` : notRun));
  row('ratio to yardstick', (r) => r.ratio_to_yardstick ?? notRun);
  return table(rows);
}

async function main(): Promise<void> {
  if (values.table) {
    const runs = values.table.split(',').flatMap((f) => (JSON.parse(fs.readFileSync(f, 'utf8')) as { runs: EngineRun[] }).runs);
    console.log(sideBySide(runs));
    return;
  }
  // The simulated agents log here: their announcements timing out under load are expected, not news.
  process.env.LOG_LEVEL ??= 'error';
  if (!(await postgresAvailable())) throw new Error('the benchmark runs the API and the worker as separate processes: it needs PostgreSQL (TEST_POSTGRES_URL)');
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'nl-bench-'));
  for (const nodes of NODE_COUNTS) {
    const machineBefore = machine();
    const runs: EngineRun[] = [];
    const at = new Date().toISOString();
    let file = '';
    for (const engine of ENGINES) {
      runs.push(await runEngine(engine, nodes, root));
      // After each engine: a run cut short still leaves the engines it finished.
      file = writeResult(`${ENGINES.join('-')}-${nodes}`, resultOf(at, nodes, runs, machineBefore.load_1min));
    }
    console.log(`\n${sideBySide(runs)}\n`);
    const result = resultOf(at, nodes, runs, machineBefore.load_1min);
    if (result.cluster_over_dev_throughput !== null) console.log(`cluster / dev whole-lifecycle throughput: ${result.cluster_over_dev_throughput}x`);
    log(`written to ${file}`);
  }
  fs.rmSync(root, { recursive: true, force: true });
  process.exit(0);
}

function resultOf(at: string, nodes: number, runs: EngineRun[], loadBefore: number) {
    const dev = runs.find((r) => r.engine === 'dev');
    const cluster = runs.find((r) => r.engine === 'cluster');
    return {
      at,
      machine: { ...machine(), load_1min_before: loadBefore, load_avg_after: os.loadavg().map((l) => round(l)) },
      nodes,
      max_concurrent_operations: loadConfig({ ...process.env, ENGINE: 'dev' }).maxConcurrentOperations,
      cpu_note:
        `utime + stime from /proc/<pid>/stat, sampled every second (a process that exits keeps its last reading). The API and the worker run as ` +
        `separate processes (src/main.ts --role api / --role worker), as a multi-process deployment would. PostgreSQL counts the backends of ` +
        `this run's databases (the inventory's, and the cluster engine's two); the server's shared processes (WAL writer, checkpointer) and ` +
        `other databases on it are listed apart and left out of per-node figures. The simulated agents run in the bench process: not the service's cost.`,
      runs,
      cluster_over_dev_throughput: dev && cluster ? round(cluster.nodes_per_second.whole_lifecycle! / dev.nodes_per_second.whole_lifecycle!, 2) : null,
      targets_never_asserted: {
        ratio_at_least_0_8: Object.fromEntries(runs.map((r) => [r.engine, r.ratio_to_yardstick === null ? null : r.ratio_to_yardstick >= 0.8])),
        cluster_ready_to_active_p99_at_most_1s: cluster ? cluster.ready_to_active_bulk.p99_ms <= 1000 : null,
        cluster_at_least_3x_dev: dev && cluster ? cluster.nodes_per_second.whole_lifecycle! >= 3 * dev.nodes_per_second.whole_lifecycle! : null,
      },
    };
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
