import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import path from 'node:path';
import { PROJECT_ROOT } from '../../src/config';
import { freePort } from './ports';
import { temporalCliPath } from './temporal-cli';

const TSX = path.join(PROJECT_ROOT, 'node_modules', 'tsx', 'dist', 'cjs', 'index.cjs');

export interface Proc {
  child: ChildProcess;
  output(): string;
  /** Resolves with the exit code (or signal) once the process has ended. */
  exited: Promise<number | string>;
}

function track(command: string, args: string[], env: Record<string, string>, options: SpawnOptions = {}): Proc {
  const child = spawn(command, args, {
    cwd: PROJECT_ROOT,
    env: { ...process.env, NODE_OPTIONS: '', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    ...options,
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  return { child, output: () => out, exited };
}

/** Runs one of the project's TypeScript entry points as a single real process (no wrapper in between). */
export function runTs(entry: string, args: string[], env: Record<string, string>): Proc {
  return track(process.execPath, ['--require', TSX, path.join(PROJECT_ROOT, entry), ...args], env);
}

/**
 * `npm start` without npm: bootstrap.sh execs tsx, which runs the service as a child node process. Its
 * own process group, as a shell gives a job, so a test can kill the whole group as a terminal's ^\ or
 * a supervisor would.
 */
export function runStartChain(args: string[], env: Record<string, string>): Proc {
  return track('bash', [path.join(PROJECT_ROOT, 'scripts', 'bootstrap.sh'), 'tsx', 'src/main.ts', ...args], env, { detached: true });
}

/** SIGKILL to a process and, for one started with runStartChain, its whole group; never throws. */
export function killHard(proc: Proc | undefined): void {
  if (!proc?.child.pid) return;
  for (const target of [-proc.child.pid, proc.child.pid]) {
    try {
      process.kill(target, 'SIGKILL');
    } catch {
      // already gone, or not a group leader
    }
  }
}

/** The dev server supervisor's own liveness check, so tests judge processes as the service does. */
export { isAlive as isRunning } from '../../src/temporal/dev-server';

/**
 * The environment of `npm start` as a user runs it on a data directory of its own: embedded PGlite, the
 * dev server as a child on free ports, headless, nothing inherited from the test run's settings.
 */
export async function userStartEnv(dataDir: string): Promise<Record<string, string>> {
  return {
    DATA_DIR: dataDir,
    PORT: String(await freePort()),
    TEMPORAL_PORT: String(await freePort()),
    TEMPORAL_UI_PORT: '0',
    TEMPORAL_CLI_PATH: temporalCliPath(),
    DATABASE_URL: '',
    TEMPORAL_ADDRESS: '',
  };
}
