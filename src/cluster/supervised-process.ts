import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import { log } from '../log';
import { stopLeftover, withParentDeathSignal } from '../temporal/dev-server';

export interface SupervisedOptions {
  /** For messages: "the Temporal server". */
  name: string;
  command: string;
  args: string[];
  /** Output of every run, appended. */
  logFile: string;
  pidFile: string;
  /** Unexpected exits tolerated within `windowMs` before giving up (default 5 a minute). */
  maxRestarts?: number;
  windowMs?: number;
}

export interface SupervisedProcess {
  readonly pid: number | undefined;
  /** The current run, for a caller waiting for it to serve. */
  readonly child: ChildProcess;
  /** Rejects when the process keeps dying and the supervisor gives up; never resolves. */
  readonly failed: Promise<never>;
  stop(): Promise<void>;
}

/**
 * Runs a child that must stay up: an exit we did not ask for is logged at error level and the child is
 * started again after a short pause; one that keeps dying makes `failed` reject, so the service stops
 * rather than run half a cluster. The child ends with this process however it ends (setpriv's parent
 * death signal), and a leftover from a crashed run, found through the pid file, is stopped first.
 */
export async function startSupervised(options: SupervisedOptions): Promise<SupervisedProcess> {
  const maxRestarts = options.maxRestarts ?? 5;
  const windowMs = options.windowMs ?? 60_000;
  const commandLine = [options.command, ...options.args];
  await stopLeftover(options.pidFile, (cmdline) => cmdline.split('\0').join(' ').includes(commandLine.join(' ')), options.name);

  let stopping = false;
  let giveUp: (err: Error) => void = () => undefined;
  const failed = new Promise<never>((_, reject) => (giveUp = reject));
  failed.catch(() => undefined); // a caller may never look; the error is logged below
  const exits: number[] = [];
  let restartTimer: NodeJS.Timeout | undefined;

  const launch = async (): Promise<ChildProcess> => {
    const [command, ...args] = withParentDeathSignal(commandLine);
    const out = fs.openSync(options.logFile, 'a');
    // Its own process group: a Ctrl-C on the terminal reaches the service, which stops the child in order.
    const child = spawn(command!, args, { stdio: ['ignore', out, out], detached: true });
    fs.closeSync(out);
    let spawned = false;
    // Listening before anything is awaited: a child that exits at once must not go unnoticed.
    child.once('exit', (code, signal) => {
      if (stopping || !spawned) return;
      const now = Date.now();
      exits.push(now);
      while (exits.length > 0 && exits[0]! < now - windowMs) exits.shift();
      const how = code ?? signal;
      if (exits.length > maxRestarts) {
        const err = new Error(`${options.name} (pid ${child.pid}) exited (${how}) ${exits.length} times within ${windowMs / 1000} s; giving up, see ${options.logFile}`);
        log.error(err.message);
        giveUp(err);
        return;
      }
      const delayMs = 500 * 2 ** (exits.length - 1);
      log.error(`${options.name} (pid ${child.pid}) exited unexpectedly (${how}); restarting it in ${delayMs} ms, see ${options.logFile}`);
      restartTimer = setTimeout(() => {
        restartTimer = undefined;
        if (stopping) return;
        launch().then(
          (next) => {
            current = next;
            // stop() came while this one was starting: it ends too.
            if (stopping) next.kill('SIGTERM');
            else log.warn(`${options.name} restarted (pid ${next.pid})`);
          },
          (err: unknown) => giveUp(err as Error),
        );
      }, delayMs);
    });
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', () => {
        spawned = true;
        resolve();
      });
      child.once('error', (err) => reject(new Error(`cannot run ${options.name} (${options.command}): ${err.message}`)));
    });
    await fsp.writeFile(options.pidFile, `${child.pid}\n`);
    return child;
  };

  let current = await launch();
  return {
    get pid() {
      return current.pid;
    },
    get child() {
      return current;
    },
    failed,
    async stop() {
      stopping = true;
      if (restartTimer) clearTimeout(restartTimer);
      const child = current;
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        child.kill('SIGTERM');
        const killer = setTimeout(() => child.kill('SIGKILL'), 15_000);
        await exited;
        clearTimeout(killer);
      }
      await fsp.rm(options.pidFile, { force: true });
    },
  };
}
