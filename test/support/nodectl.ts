import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { PROJECT_ROOT } from '../../src/config';
import type { TestService } from './harness';

const run = promisify(execFile);

/** Runs bin/nodectl as an operator would; never throws, returns what it printed and its exit code. */
export async function nodectl(ts: TestService, args: string[], env: Record<string, string> = {}) {
  // `--token=VALUE`: a configured API_TOKEN may begin with '-', which a separate argument would turn into an option.
  const withServer = env.DATA_DIR ? args : [`--server=${ts.service.apiUrl!}`, `--token=${ts.service.apiToken}`, ...args];
  try {
    const { stdout, stderr } = await run(path.join(PROJECT_ROOT, 'bin', 'nodectl'), withServer, { env: { ...process.env, NODE_OPTIONS: '', ...env } });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}
