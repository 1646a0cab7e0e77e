import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startDevServer, type DevServer } from '../../src/temporal/dev-server';
import { freePort } from './ports';
import { temporalCliPath } from './temporal-cli';

declare global {
  var __temporalDevServer: DevServer | undefined;
  var __temporalDataDir: string | undefined;
}

/** One real Temporal dev server for the run; test files isolate themselves by task queue and host names. */
export default async function globalSetup(): Promise<void> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'nl-temporal-'));
  const server = await startDevServer({
    cliPath: temporalCliPath(),
    dataDir,
    port: await freePort(),
    uiPort: 0,
    headless: true,
    namespace: 'default',
  });
  globalThis.__temporalDevServer = server;
  globalThis.__temporalDataDir = dataDir;
  // Test workers are spawned after this and inherit the environment.
  process.env.TEST_TEMPORAL_ADDRESS = server.address;
}
