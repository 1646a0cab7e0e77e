import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { HostOperations } from './operations';

export interface HookResult {
  operation: string;
  /** False when the node has no hook for this operation: nothing to run counts as success. */
  ran: boolean;
  exit_code: number;
  stdout: string;
  stderr: string;
  duration_ms: number;
}

/** What the server sends to run a script role on this node. */
export interface RoleRun {
  role: string;
  deployment: string;
  script: string;
  attributes: Record<string, unknown>;
  timeoutMs: number;
}

/** In-process observers (the fleet simulator) see every hook start and end. */
export interface HookObserver {
  started(hostname: string, operation: string): void;
  ended(hostname: string, operation: string): void;
}

const OUTPUT_LIMIT = 64 * 1024;

/**
 * Runs the cluster's step for an operation: an executable named after it in the hooks directory,
 * with the merged extra_vars as JSON on stdin. One operation at a time on a node: a second caller with
 * the same operation id joins the first (a retried request), a different one is told the node is busy.
 */
/** Recent results kept by operation id: enough for any retry, bounded for a long-lived agent. */
const REMEMBERED_RESULTS = 64;

export class HookRunner {
  private current: { id: string; result: Promise<HookResult> } | undefined;
  private readonly finished = new Map<string, HookResult>();

  constructor(
    private readonly hostname: string,
    private readonly hooksDir: string,
    private readonly operations: HostOperations,
    private readonly sandbox: string | undefined,
    private readonly observer?: HookObserver,
  ) {}

  run(operationId: string, operation: string, extraVars: Record<string, unknown>): Promise<HookResult> | 'busy' {
    return this.once(operationId, () => this.execute(operation, extraVars));
  }

  /** A deployment's script role: its text is run as given, with its input on stdin; the same one-at-a-time rule. */
  runRole(operationId: string, role: RoleRun): Promise<HookResult> | 'busy' {
    return this.once(operationId, () => this.executeRole(role));
  }

  private once(operationId: string, work: () => Promise<HookResult>): Promise<HookResult> | 'busy' {
    if (this.current) return this.current.id === operationId ? this.current.result : 'busy';
    // A step retried after its worker died (the run had finished, its answer was lost) is not run twice.
    const finished = this.finished.get(operationId);
    if (finished) return Promise.resolve(finished);
    const result = work()
      .then((done) => {
        this.remember(operationId, done);
        return done;
      })
      .finally(() => {
        this.current = undefined;
      });
    this.current = { id: operationId, result };
    return result;
  }

  private remember(operationId: string, result: HookResult): void {
    this.finished.set(operationId, result);
    if (this.finished.size > REMEMBERED_RESULTS) this.finished.delete(this.finished.keys().next().value!);
  }

  private async execute(operation: string, extraVars: Record<string, unknown>): Promise<HookResult> {
    const started = Date.now();
    this.observer?.started(this.hostname, operation);
    try {
      const delay = await this.operations.injectedDelay(operation);
      if (delay > 0) await sleep(delay);
      const injected = await this.operations.injectedFailure(operation);
      if (injected) return { operation, ran: true, exit_code: 1, stdout: '', stderr: injected, duration_ms: Date.now() - started };
      const executable = path.join(this.hooksDir, operation);
      try {
        await fs.access(executable, fs.constants.X_OK);
      } catch {
        return { operation, ran: false, exit_code: 0, stdout: '', stderr: '', duration_ms: Date.now() - started };
      }
      const input = JSON.stringify({ operation, hostname: this.hostname, extra_vars: extraVars });
      return { ...(await this.spawnHook(executable, input)), operation, ran: true, duration_ms: Date.now() - started };
    } finally {
      this.observer?.ended(this.hostname, operation);
    }
  }

  private async executeRole(role: RoleRun): Promise<HookResult> {
    const started = Date.now();
    const operation = `role:${role.role}`;
    this.observer?.started(this.hostname, operation);
    // The script is written where only this agent can read it, run, and removed whatever happens.
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'nodeagent-role-'));
    try {
      const executable = path.join(dir, role.role);
      await fs.writeFile(executable, role.script, { mode: 0o700 });
      const input = JSON.stringify({ role: role.role, hostname: this.hostname, deployment: role.deployment, attributes: role.attributes });
      const ran = await this.spawnHook(executable, input, { NODEAGENT_ROLE: role.role, NODEAGENT_DEPLOYMENT: role.deployment }, role.timeoutMs);
      return { ...ran, operation, ran: true, duration_ms: Date.now() - started };
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
      this.observer?.ended(this.hostname, operation);
    }
  }

  private spawnHook(
    executable: string,
    input: string,
    extraEnv: Record<string, string> = {},
    timeoutMs?: number,
  ): Promise<{ exit_code: number; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      const child = spawn(executable, [], {
        cwd: this.sandbox ?? this.hooksDir,
        env: { ...process.env, ...extraEnv, NODEAGENT_HOSTNAME: this.hostname, ...(this.sandbox ? { NODEAGENT_SANDBOX: this.sandbox } : {}) },
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      let timedOut = false;
      // A role that never ends would hold its node (and a slot of the cap) for ever.
      const timer = timeoutMs
        ? setTimeout(() => {
            timedOut = true;
            child.kill('SIGKILL');
          }, timeoutMs)
        : undefined;
      child.on('close', () => clearTimeout(timer));
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout = (stdout + d.toString()).slice(-OUTPUT_LIMIT)));
      child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-OUTPUT_LIMIT)));
      child.on('error', (err) => resolve({ exit_code: 127, stdout, stderr: `${stderr}${err.message}` }));
      child.on('close', (code, signal) => {
        if (timedOut) resolve({ exit_code: 124, stdout, stderr: `${stderr}timed out after ${Math.round(timeoutMs! / 1000)} s and was killed` });
        else resolve({ exit_code: code ?? (signal ? 128 : 1), stdout, stderr });
      });
      child.stdin.on('error', () => undefined); // a hook that ignores its input may close stdin early
      child.stdin.end(input);
    });
  }
}
