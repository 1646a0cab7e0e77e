import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { acquireServiceLock, DataDirInUse, type ServiceLock } from '../src/service-lock';

/**
 * The DATA_DIR lock is an flock on an open file description, so two acquisitions in one process
 * conflict exactly as two processes would.
 */
let dataDir: string;
const held: ServiceLock[] = [];

beforeEach(() => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'nl-lock-'));
});
afterEach(() => {
  for (const lock of held.splice(0)) lock.release();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

type LockConfig = Parameters<typeof acquireServiceLock>[0];
const embedded = (): LockConfig => ({ dataDir, databaseUrl: undefined, temporalAddress: undefined });
const external = (): LockConfig => ({ dataDir, databaseUrl: 'postgres://127.0.0.1/x', temporalAddress: '127.0.0.1:7233' });
const acquire = (config: LockConfig, role: string) => {
  const lock = acquireServiceLock(config, role);
  held.push(lock);
  return lock;
};

test('an embedded service holds DATA_DIR alone and is named by pid and API URL', () => {
  acquire(embedded(), 'all');
  fs.writeFileSync(path.join(dataDir, 'api-url'), 'http://127.0.0.1:8123\n');

  for (const [config, role] of [[embedded(), 'all'], [external(), 'worker'], [external(), 'api'], [external(), 'all']] as const) {
    expect(() => acquire(config, role)).toThrow(DataDirInUse);
    expect(() => acquire(config, role)).toThrow(
      `a node-lifecycle service is already running on DATA_DIR ${dataDir} (pid ${process.pid}, API http://127.0.0.1:8123); stop it first`,
    );
  }
});

test('api and worker processes share DATA_DIR, and an embedded service refuses to join them', () => {
  acquire(external(), 'api');
  acquire(external(), 'worker');
  acquire(external(), 'worker');

  expect(() => acquire(embedded(), 'all')).toThrow(`(pid ${process.pid}, worker role); stop it first`);
});

test('an API URL left by an earlier run is not passed off as the holder\'s', () => {
  const stale = path.join(dataDir, 'api-url');
  fs.writeFileSync(stale, 'http://127.0.0.1:9999\n');
  fs.utimesSync(stale, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
  acquire(embedded(), 'all');

  expect(() => acquire(embedded(), 'all')).toThrow(`(pid ${process.pid}); stop it first`);
});

test('a released lock can be taken again', () => {
  acquire(embedded(), 'all').release();

  expect(() => acquire(embedded(), 'all')).not.toThrow();
});
