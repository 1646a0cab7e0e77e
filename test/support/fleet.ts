import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { forEachLimited } from '../../src/concurrency';
import { Fleet } from '../../src/fleet/simulator';
import { acceptNode, nodeState, type TestService } from './harness';
import { waitFor } from './wait-for';

let network = 120;

/** A simulated fleet, announced, accepted and active. */
export async function startActiveFleet(ts: TestService, count: number, label: string): Promise<Fleet> {
  const fleet = await Fleet.start({
    serverUrl: ts.service.apiUrl!,
    count,
    prefix: ts.hostname(label).replace(/\.test$/, ''),
    rootDir: fs.mkdtempSync(path.join(os.tmpdir(), 'nl-fleet-')),
    network: network++ + Number(process.env.JEST_WORKER_ID ?? 0) * 10,
    announceIntervalMs: 300,
  });
  // Accepts of different nodes are independent: one after the other, each waiting for a starved worker to
  // take it, a fleet of 29 took minutes.
  await forEachLimited(fleet.hostnames, 8, async (hostname) => {
    await waitFor(() => nodeState(ts, hostname), (s) => s !== undefined, { what: `${hostname} to announce` });
    const res = await acceptNode(ts, hostname, fleet.fingerprint(hostname));
    if (res.status !== 202) throw new Error(`accept ${hostname}: ${res.status} ${JSON.stringify(res.body)}`);
  });
  for (const hostname of fleet.hostnames) {
    await waitFor(() => nodeState(ts, hostname), (s) => s === 'active', { what: `${hostname} to be active` });
  }
  return fleet;
}

/** Installs an executable hook in a simulated node's sandbox. */
export function installHook(fleet: Fleet, hostname: string, operation: string, script: string): void {
  const dir = path.join(fleet.sandbox(hostname), 'etc/nodeagent/hooks');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, operation), `#!/bin/sh\n${script}\n`, { mode: 0o755 });
}

export async function waitForTask(ts: TestService, taskId: string, timeoutMs = 120_000) {
  return waitFor(
    () => ts.api.get(`/api/v1/tasks/${taskId}`),
    (r) => r.body.status === 'succeeded' || r.body.status === 'failed',
    { what: `task ${taskId} to finish`, timeoutMs, intervalMs: 200 },
  );
}
