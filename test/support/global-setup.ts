import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startDevServer, type DevServer } from '../../src/temporal/dev-server';
import { freePort } from './ports';
import { temporalCliPath } from './temporal-cli';
import { startTestCluster, type TestCluster } from './test-cluster';

declare global {
  var __temporalDevServer: DevServer | undefined;
  var __temporalCluster: TestCluster | undefined;
  var __temporalDataDir: string | undefined;
}

/**
 * One real Temporal for the run; test files isolate themselves by task queue and host names. The dev
 * server, or with TEST_ENGINE=cluster a Temporal server on PostgreSQL (the cluster engine), so any
 * test file that uses the harness runs on either engine.
 */
export default async function globalSetup(): Promise<void> {
  const engine = process.env.TEST_ENGINE || 'dev';
  if (engine === 'cluster') {
    const cluster = await startTestCluster();
    globalThis.__temporalCluster = cluster;
    process.env.TEST_TEMPORAL_ADDRESS = cluster.address;
    return;
  }
  if (engine !== 'dev') throw new Error(`TEST_ENGINE=${engine} must be dev or cluster`);
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
