import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Connection } from '@temporalio/client';
import { log } from '../log';

export interface DevServerOptions {
  cliPath: string;
  /** Holds the SQLite file (so workflows survive restarts), the pid file and the log. */
  dataDir: string;
  ip?: string;
  port: number;
  uiPort: number;
  namespace: string;
  /** Disable the web UI (tests). */
  headless?: boolean;
  readyTimeoutMs?: number;
}

export interface DevServer {
  address: string;
  uiUrl: string | undefined;
  pid: number;
  /** Resolves when the process has exited. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

const PID_FILE = 'temporal-dev-server.pid';
const DB_FILE = 'temporal.sqlite';

/**
 * Runs `temporal server start-dev` as a child process on a SQLite file under dataDir; the server gets
 * SIGTERM when this process ends, however it ends (see withParentDeathSignal). A server still found
 * through the pid file (one that was shutting down as we started, or started where setpriv is missing)
 * is stopped first, so a restart after a crash just works. The caller must own dataDir: startService
 * holds its lock, so a live service's server is never taken for a leftover.
 */
export async function startDevServer(options: DevServerOptions): Promise<DevServer> {
  const ip = options.ip ?? '127.0.0.1';
  await fsp.mkdir(options.dataDir, { recursive: true });
  const dbFile = path.join(options.dataDir, DB_FILE);
  const pidFile = path.join(options.dataDir, PID_FILE);
  // Only a dev server on our own database file is ours to stop; a reused pid is someone else's.
  await stopLeftover(pidFile, (cmdline) => cmdline.includes('start-dev') && cmdline.includes(dbFile), 'a Temporal dev server');
  await assertPortFree(ip, options.port, 'TEMPORAL_PORT');
  if (!options.headless) await assertPortFree(ip, options.uiPort, 'TEMPORAL_UI_PORT');

  const args = [
    'server', 'start-dev',
    '--ip', ip,
    '--port', String(options.port),
    '--namespace', options.namespace,
    '--db-filename', dbFile,
    // WAL keeps readers off the writer's back; durability stays on (no synchronous=OFF).
    '--sqlite-pragma', 'journal_mode=WAL',
    '--search-attribute', 'NodeState=Keyword',
    '--log-level', 'warn',
    ...(options.headless ? ['--headless'] : ['--ui-port', String(options.uiPort)]),
  ];
  // A path is checked here (behind setpriv a bad one would only show as "exited (127)"); a bare name is
  // looked up on PATH by spawn itself.
  try {
    if (options.cliPath.includes('/')) fs.accessSync(options.cliPath, fs.constants.X_OK);
  } catch (err) {
    throw new Error(`cannot run the Temporal CLI at ${options.cliPath}: ${(err as Error).message}`);
  }
  const [command, ...commandArgs] = withParentDeathSignal([options.cliPath, ...args]);
  const logFile = fs.openSync(path.join(options.dataDir, 'temporal.log'), 'a');
  // Its own process group: a Ctrl-C on the terminal reaches us, and we stop the server after the worker.
  const child = spawn(command!, commandArgs, { stdio: ['ignore', logFile, logFile], detached: true });
  fs.closeSync(logFile);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', (err) => reject(new Error(`cannot run the Temporal CLI at ${options.cliPath}: ${err.message}`)));
  });
  await fsp.writeFile(pidFile, `${child.pid}\n`);

  const address = `${ip}:${options.port}`;
  try {
    await waitUntilServing(address, child, options.readyTimeoutMs ?? 60_000);
  } catch (err) {
    child.kill('SIGKILL');
    await exited;
    throw new Error(`${(err as Error).message}; see ${path.join(options.dataDir, 'temporal.log')}`);
  }
  log.info(`temporal dev server ${address} (pid ${child.pid}) on ${dbFile}`);
  return {
    address,
    uiUrl: options.headless ? undefined : `http://${ip}:${options.uiPort}`,
    pid: child.pid!,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill(signal);
        const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(killer);
      }
      await fsp.rm(pidFile, { force: true });
    },
  };
}

let parentDeathSignal: boolean | undefined;

/**
 * Prefixes the command with `setpriv --pdeathsig SIGTERM` (util-linux, on every Debian): the kernel
 * sends the server SIGTERM when the thread that spawned it ends, and Node spawns from its main thread,
 * so the server goes with this process even on SIGKILL, and with a killed process group although it has
 * a group of its own. prctl(PR_SET_PDEATHSIG) survives the exec into the Temporal CLI, which we cannot
 * change to watch a pipe instead. SIGTERM, not SIGKILL, so it still closes its SQLite file cleanly.
 */
export function withParentDeathSignal(command: string[]): string[] {
  parentDeathSignal ??= spawnSync('setpriv', ['--pdeathsig', 'SIGTERM', 'true'], { stdio: 'ignore' }).status === 0;
  if (parentDeathSignal) return ['setpriv', '--pdeathsig', 'SIGTERM', '--', ...command];
  log.warn('setpriv (util-linux) with --pdeathsig is not available: Temporal processes will outlive this process if it is killed with SIGKILL');
  return command;
}

/**
 * Stops the process a pid file names if `ours` recognises its command line (a pid may have been reused
 * by someone else's process), then removes the pid file.
 */
export async function stopLeftover(pidFile: string, ours: (cmdline: string) => boolean, what: string): Promise<void> {
  const pid = Number((await fsp.readFile(pidFile, 'utf8').catch(() => '')).trim());
  if (!pid) return;
  const cmdline = await fsp.readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  if (ours(cmdline)) {
    log.warn(`stopping ${what} (pid ${pid}) left behind by a previous run`);
    process.kill(pid, 'SIGTERM');
    for (let i = 0; i < 100 && isAlive(pid); i++) await sleep(100);
    if (isAlive(pid)) process.kill(pid, 'SIGKILL');
    for (let i = 0; i < 50 && isAlive(pid); i++) await sleep(100);
  }
  await fsp.rm(pidFile, { force: true });
}

/** True while the process runs (a zombie has exited already). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) Z/.test(stat); // a zombie has exited already
  } catch {
    return false;
  }
}

export function assertPortFree(host: string, port: number, name: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new Error(
          err.code === 'EADDRINUSE'
            ? `${name} ${port} on ${host} is in use by another process; stop it, choose another ${name}, or set TEMPORAL_ADDRESS to use a running server`
            : `cannot bind ${host}:${port}: ${err.message}`,
        ),
      ),
    );
    probe.listen(port, host, () => probe.close(() => resolve()));
  });
}

async function waitUntilServing(address: string, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError = 'no answer';
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`the Temporal dev server exited (${child.exitCode ?? child.signalCode}) before serving`);
    }
    try {
      const connection = await Connection.connect({ address, connectTimeout: 1000 });
      try {
        await connection.workflowService.getSystemInfo({});
        return;
      } finally {
        await connection.close();
      }
    } catch (err) {
      lastError = (err as Error).message;
      await sleep(200);
    }
  }
  throw new Error(`the Temporal dev server at ${address} did not answer within ${timeoutMs} ms (${lastError})`);
}
