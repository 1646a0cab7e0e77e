/**
 * Idle-memory benchmark (issue #11 part 3): the worker's resident memory with 10,000 idle node
 * workflows, each in its `active` state, waiting for the next command.
 *
 *   tsx bench/idle-memory.ts [--nodes 10000]
 *
 * The worker is the service's own (`src/main.ts --role worker`, as `npm run worker` runs it) in a
 * process of its own, so /proc shows its memory alone. The workflows are started as the product
 * starts a node's workflow for a node the inventory already has: NodeWorkflows' update-with-start
 * options (workflow, id, args, search attribute) with the state read from the database, `active`. That
 * skips 10,000 simulated agents and their initialization, which this 2-core machine cannot carry beside
 * the worker being measured; an idle node after initialization and its next continue-as-new is in the
 * same shape. A benchmark, never asserted.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { Client, Connection, type WithStartWorkflowOperation } from '@temporalio/client';
import knexFactory from 'knex';
import { forEachLimited } from '../src/concurrency';
import { loadConfig } from '../src/config';
import { applyMigrations } from '../src/db/migrations';
import { createTestDatabase, postgresAvailable } from '../src/dev/scratch-database';
import { freePort } from '../src/dev/free-port';
import type { NodeState } from '../src/domain/states';
import { startDevServer } from '../src/temporal/dev-server';
import { NodeWorkflows } from '../src/temporal/node-workflows';
import { maxCachedWorkflowsFrom } from '../src/temporal/worker';
import type { nodeLifecycle } from '../workflows/node-lifecycle';
import { nodeWorkflowId } from '../workflows/definitions';
import { log, machine, table, writeResult, runBenchmark, runCleanup } from './bench-support';

const { values } = parseArgs({ options: { nodes: { type: 'string', default: process.env.BENCH_NODES ?? '10000' } } });
const NODES = Number(values.nodes);
const TASK_QUEUE = 'bench-idle';
const TARGET_RSS_MIB = 1024;
const REPO = path.join(__dirname, '..');

/** VmRSS and VmHWM of a process, in MiB, from /proc/<pid>/status. */
function memoryOf(pid: number): { rss_mib: number; hwm_mib: number } {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rss_mib: Math.round(kib('VmRSS') / 1024), hwm_mib: Math.round(kib('VmHWM') / 1024) };
}

const TICKS_PER_SECOND = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** CPU seconds a process has used, every thread: utime + stime, fields 14 and 15 of /proc/<pid>/stat. */
function cpuSecondsOf(pid: number): number {
  const raw = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = raw.slice(raw.lastIndexOf(')') + 2).split(' ');
  return Math.round(((Number(rest[11]) + Number(rest[12])) / TICKS_PER_SECOND) * 10) / 10;
}

/** What the memory probe last wrote for each thread of the worker (main thread first). */
function heapsOf(prefix: string): unknown[] {
  const dir = path.dirname(prefix);
  return fs
    .readdirSync(dir)
    .filter((f) => f.startsWith(`${path.basename(prefix)}.`))
    .map((f) => JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as { thread: number })
    .sort((a, b) => a.thread - b.thread);
}

/** The worker's Core metrics (Prometheus text), summed over labels by metric name. */
async function scrape(url: string): Promise<Map<string, number>> {
  const text = await (await fetch(url)).text();
  const sums = new Map<string, number>();
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{[^}]*\})?\s+(\S+)$/.exec(line);
    if (match) sums.set(match[1]!, (sums.get(match[1]!) ?? 0) + Number(match[2]));
  }
  return sums;
}

/**
 * What the SDK would choose were maxCachedWorkflows not set (1.24, reuseV8Context): max(floor((heap
 * limit MiB - 200) * 600 / 1024), 10), the heap limit being this node binary's with the worker's
 * NODE_OPTIONS. For comparison only: createWorker sets the cache (WORKER_MAX_CACHED_WORKFLOWS).
 */
function sdkDefaultMaxCachedWorkflows(env: NodeJS.ProcessEnv): { heap_limit_mib: number; max_cached_workflows: number } {
  const out = spawnSync(process.execPath, ['-p', 'require("v8").getHeapStatistics().heap_size_limit'], { env, encoding: 'utf8' });
  const heapMiB = Number(out.stdout.trim()) / 2 ** 20;
  return { heap_limit_mib: Math.round(heapMiB), max_cached_workflows: Math.max(Math.floor((Math.max(heapMiB - 200, 0) * 600) / 1024), 10) };
}

async function startWorker(env: NodeJS.ProcessEnv): Promise<ChildProcess> {
  // node --import tsx: one process, the worker itself (the tsx launcher would put a parent in between).
  const child = spawn(process.execPath, ['--import', 'tsx', '--import', './bench/memory-probe.mjs', 'src/main.ts', '--role', 'worker'], { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const output: string[] = [];
  child.stderr!.on('data', (d: Buffer) => output.push(d.toString()));
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      output.push(d.toString());
      if (output.join('').includes('is running')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`worker exited (${code}) before it was up:\n${output.join('')}`)));
  });
  child.stdout!.resume();
  return child;
}

async function stopWorker(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await Promise.race([exited, sleep(30_000).then(() => child.kill('SIGKILL'))]);
}

async function main(): Promise<void> {
  process.env.LOG_LEVEL ??= 'warn';
  if (!(await postgresAvailable())) throw new Error('the idle-memory benchmark needs PostgreSQL: the worker role runs beside the API on a shared database');
  const startedMachine = machine();
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'nl-bench-idle-'));
  // Run last to first: the scratch directory (the dev server's and the worker's files) goes once everything in it has stopped.
  const cleanup: (() => Promise<unknown>)[] = [async () => fs.rmSync(root, { recursive: true, force: true })];
  try {
    const database = await createTestDatabase();
    cleanup.push(() => database.drop());
    const knex = knexFactory({ client: 'pg', connection: database.url, pool: { min: 0, max: 4 } });
    cleanup.push(() => knex.destroy());
    await applyMigrations(knex);
    const hostnames = Array.from({ length: NODES }, (_, i) => `idle${String(i).padStart(5, '0')}.dc1.example.net`);
    for (let i = 0; i < NODES; i += 1000) {
      await knex('nodes').insert(
        hostnames.slice(i, i + 1000).map((hostname, j) => ({
          hostname,
          state: 'active',
          fingerprint: `SHA256:${Buffer.from(`${hostname}-bench-key`).toString('base64').replace(/=+$/, '').slice(0, 43).padEnd(43, 'A')}`,
          address: `10.1.${((i + j) >> 8) & 255}.${(i + j) & 255}`,
          announced_at: new Date(),
          accepted_at: new Date(),
          last_seen_at: new Date(),
          reachable: true,
        })),
      );
    }

    const cliPath = process.env.TEMPORAL_CLI_PATH ?? path.join(REPO, '.tools', 'temporal-v1.5.1', 'temporal');
    const devServer = await startDevServer({ cliPath, dataDir: path.join(root, 'temporal'), port: await freePort(), uiPort: 0, headless: true, namespace: 'default' });
    cleanup.push(() => devServer.stop());
    const metricsListen = `127.0.0.1:${await freePort()}`;
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      DATA_DIR: path.join(root, 'worker'),
      TEMPORAL_ADDRESS: devServer.address,
      TASK_QUEUE,
      DATABASE_URL: database.url,
      LOG_LEVEL: 'warn',
      TEMPORAL_METRICS_LISTEN: metricsListen,
      // Idle agents heartbeat; these rows have no agents behind them, so the monitor must not count their silence.
      DISAPPEAR_AFTER: '24h',
      BENCH_MEMORY_PROBE: path.join(root, 'probe', 'heap'),
    };
    fs.mkdirSync(path.join(root, 'probe'));
    const sdkDefault = sdkDefaultMaxCachedWorkflows(env);
    const cache = { max_cached_workflows: maxCachedWorkflowsFrom(env) };
    const worker = await startWorker(env);
    cleanup.push(() => stopWorker(worker));
    const pid = worker.pid!;
    const metricsUrl = `http://${metricsListen}/metrics`;
    await sleep(10_000);
    const baseline = memoryOf(pid);
    const cpuBefore = cpuSecondsOf(pid);
    const baselineHeaps = heapsOf(env.BENCH_MEMORY_PROBE!);
    log(`worker ${pid} up; ${baseline.rss_mib} MiB resident before any node workflow; sticky cache ${cache.max_cached_workflows} runs`);
    // The resident memory all along (the peak comes while the runs are started, before idle).
    const timeline: { at_s: number; rss_mib: number }[] = [];
    const sampleFrom = Date.now();
    const sampler = setInterval(() => {
      if (worker.exitCode === null) timeline.push({ at_s: Math.round((Date.now() - sampleFrom) / 1000), rss_mib: memoryOf(pid).rss_mib });
    }, 5_000);
    cleanup.push(async () => clearInterval(sampler));

    // The product's own start of a node workflow (NodeWorkflows.withStart), with the state the database holds.
    const config = loadConfig(env);
    const connection = await Connection.connect({ address: devServer.address });
    cleanup.push(() => connection.close());
    const client = new Client({ connection });
    const settings = { initCheckIntervalMs: config.initCheckIntervalMs, initWindowMs: config.initWindowMs, operationTimeoutMs: config.operationTimeoutMs, deploy: config.deploy };
    const workflows = new NodeWorkflows(client.workflow, TASK_QUEUE, settings, { commandTimeoutMs: config.commandTimeoutMs, requestTimeoutMs: config.temporalTimeoutMs, abandon: async () => false });
    const startOf = (workflows as unknown as { withStart(h: string, s: NodeState): WithStartWorkflowOperation<typeof nodeLifecycle> }).withStart.bind(workflows);
    const stateOf = new Map((await knex('nodes').select('hostname', 'state')).map((r: { hostname: string; state: NodeState }) => [r.hostname, r.state]));
    const t0 = Date.now();
    await forEachLimited(hostnames, 32, async (hostname) => {
      const operation = startOf(hostname, stateOf.get(hostname)!);
      await client.workflow.start(operation.workflowTypeOrFunc, operation.options);
    });
    const startedMs = Date.now() - t0;
    log(`${NODES} node workflows started in ${startedMs} ms; waiting for the worker to go idle`);

    // Idle: every workflow has run its first task (the count of executed tasks stops growing) and none is pending.
    const tasksRun = async () => (await scrape(metricsUrl)).get('temporal_workflow_task_execution_latency_count') ?? 0;
    let last = -1;
    let stableSince = Date.now();
    for (;;) {
      const now = await tasksRun();
      if (now !== last) {
        last = now;
        stableSince = Date.now();
      } else if (now >= NODES && Date.now() - stableSince >= 20_000) break;
      if (Date.now() - t0 > 30 * 60_000) throw new Error(`not idle after 30 minutes: ${now} workflow tasks run`);
      await sleep(2_000);
    }
    const sample = hostnames.filter((_, i) => i % Math.ceil(NODES / 25) === 0);
    const pending = (
      await Promise.all(sample.map(async (h) => ((await client.workflow.getHandle(nodeWorkflowId(h)).describe()).raw.pendingWorkflowTask ? h : null)))
    ).filter(Boolean);
    if (pending.length > 0) throw new Error(`workflows still have a task pending: ${pending.join(', ')}`);
    const history = await client.workflow.getHandle(nodeWorkflowId(hostnames[0]!)).fetchHistory();
    const idleAt = Date.now();
    const cpuAtIdle = cpuSecondsOf(pid);
    log(`idle ${idleAt - t0} ms after the first start (${last} workflow tasks run); sampling memory for 60 s`);

    const samples: { at_s: number; rss_mib: number }[] = [];
    for (let s = 0; s <= 60; s += 5) {
      samples.push({ at_s: s, rss_mib: memoryOf(pid).rss_mib });
      if (s < 60) await sleep(5_000);
    }
    const final = memoryOf(pid);
    const finalHeaps = heapsOf(env.BENCH_MEMORY_PROBE!);
    const metrics = await scrape(metricsUrl);
    const cached = metrics.get('temporal_sticky_cache_size') ?? NaN;
    const devServerMemory = memoryOf(devServer.pid);
    const rssValues = samples.map((s) => s.rss_mib);

    const result = {
      at: new Date().toISOString(),
      benchmark: 'idle-memory',
      machine: startedMachine,
      load_1min_at_end: os.loadavg()[0],
      nodes: NODES,
      method:
        'Worker: node --import tsx src/main.ts --role worker (PostgreSQL, dev server). Workflows started with NodeWorkflows.withStart options for state active (read from the nodes table), 32 starts at a time. Idle: executed workflow tasks unchanged for 20 s and no pending task on a sample of 25. Memory from /proc/<pid>/status of the worker process, sampled every 5 s for 60 s after idle.',
      started_in_ms: startedMs,
      idle_after_ms: idleAt - t0,
      // The worker's CPU from the first start to idle (every thread, garbage collection included): what the heap limit costs.
      worker_cpu_s_to_idle: Math.round((cpuAtIdle - cpuBefore) * 10) / 10,
      workflow_tasks_run: last,
      history_events_per_workflow: history.events?.length ?? null,
      sticky_cache: {
        max_cached_workflows: cache.max_cached_workflows,
        source: `createWorker (src/temporal/worker.ts): WORKER_MAX_CACHED_WORKFLOWS${env.WORKER_MAX_CACHED_WORKFLOWS ? `=${env.WORKER_MAX_CACHED_WORKFLOWS}` : ' unset, its default'}; reuseV8Context on, one workflow thread`,
        sdk_default_would_be: sdkDefault.max_cached_workflows,
        heap_size_limit_mib: sdkDefault.heap_limit_mib,
        cached_runs_at_end: cached,
        forced_evictions: metrics.get('temporal_sticky_cache_total_forced_eviction') ?? null,
        sticky_schedule_to_start_timeout_s: 10,
      },
      worker_memory: {
        rss_mib_before_workflows: baseline.rss_mib,
        rss_mib: final.rss_mib,
        hwm_mib: final.hwm_mib,
        rss_mib_min_over_60s: Math.min(...rssValues),
        rss_mib_max_over_60s: Math.max(...rssValues),
        per_cached_run_kib: Number.isFinite(cached) && cached > 0 ? Math.round(((final.rss_mib - baseline.rss_mib) * 1024) / cached) : null,
        samples,
        // Every 5 s from the worker's start (before the first workflow) to the end of the idle samples.
        timeline,
        rss_mib_max_sampled: Math.max(...timeline.map((t) => t.rss_mib)),
        // Thread 0 is the main thread (SDK, Core bridge, activities); the other the workflow thread (cached runs' contexts).
        v8_heaps_before_workflows: baselineHeaps,
        v8_heaps_idle: finalHeaps,
      },
      dev_server_memory: devServerMemory,
      target: {
        rss_mib: TARGET_RSS_MIB,
        idle_rss_met: final.rss_mib <= TARGET_RSS_MIB,
        // The peak comes while the runs are brought up: each start beyond the cache evicts one, and V8 returns that garbage later.
        peak_hwm_met: final.hwm_mib <= TARGET_RSS_MIB,
      },
    };
    const file = writeResult(`idle-memory-${NODES}`, result);
    console.log(
      table([
        ['idle node workflows', 'cached runs (max)', 'RSS before', 'RSS idle', 'VmHWM', 'per cached run', 'target'],
        [
          NODES,
          `${cached} (${cache.max_cached_workflows})`,
          `${baseline.rss_mib} MiB`,
          `${final.rss_mib} MiB`,
          `${final.hwm_mib} MiB`,
          `${result.worker_memory.per_cached_run_kib ?? '?'} KiB`,
          `<= ${TARGET_RSS_MIB} MiB: idle ${result.target.idle_rss_met ? 'met' : 'missed'}, peak ${result.target.peak_hwm_met ? 'met' : 'missed'}`,
        ],
      ]),
    );
    log(`nproc ${startedMachine.nproc}, 1-min load ${startedMachine.load_1min.toFixed(2)} at start, ${os.loadavg()[0]!.toFixed(2)} at end; written to ${file}`);
  } finally {
    await runCleanup(cleanup);
  }
}

runBenchmark(main);
