import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Config } from './config';
import { isAlive } from './temporal/dev-server';

const LOCK_FILE = 'service.lock';
/** Every holder writes one record of this size at offset 0, so the last writer's record is whole. */
const RECORD_BYTES = 256;

/** Another service holds DATA_DIR; the message names it. */
export class DataDirInUse extends Error {}

export interface ServiceLock {
  release(): void;
}

interface Holder {
  pid: number;
  role: string;
  since: number;
}

/**
 * Claims DATA_DIR for this process, or throws DataDirInUse naming the process that holds it.
 *
 * A process that runs something embedded in DATA_DIR (the PGlite database, the dev server on its
 * SQLite file: role all without DATABASE_URL or TEMPORAL_ADDRESS) holds it exclusively. Every other
 * process (api and worker roles, or all against an outside database and Temporal) shares it: several
 * of them beside one another on one DATA_DIR is a deployment (they share its server key and token by
 * design), while any of them beside an embedded service would write a different database's API URL
 * into it, or work a task queue against another database.
 *
 * The lock is flock(2) on DATA_DIR/service.lock, so the kernel drops it when the process ends, however
 * it ends: there is never a stale lock to judge by pid or start time, and no race to take one over.
 */
export function acquireServiceLock(config: Pick<Config, 'dataDir' | 'databaseUrl' | 'temporalAddress'>, role: string): ServiceLock {
  const exclusive = role === 'all' && (!config.databaseUrl || !config.temporalAddress);
  const fd = fs.openSync(path.join(config.dataDir, LOCK_FILE), fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644);
  try {
    if (!flock(fd, exclusive)) throw new DataDirInUse(describeHolder(fd, config.dataDir));
    const holder: Holder = { pid: process.pid, role, since: Date.now() };
    fs.writeSync(fd, `${JSON.stringify(holder).padEnd(RECORD_BYTES - 1)}\n`, 0);
  } catch (err) {
    fs.closeSync(fd);
    throw err;
  }
  let open = true;
  return {
    release() {
      if (open) fs.closeSync(fd);
      open = false;
    },
  };
}

/**
 * Node has no flock(2). flock(1) (util-linux, as setpriv) locks the open file description it inherits
 * as fd 3, which this process keeps after flock(1) exits; the fd is close-on-exec, so no child of ours
 * inherits the lock.
 */
function flock(fd: number, exclusive: boolean): boolean {
  const result = spawnSync('flock', [exclusive ? '--exclusive' : '--shared', '--nonblock', '3'], { stdio: ['ignore', 'ignore', 'pipe', fd] });
  if (result.error) throw new Error(`cannot lock DATA_DIR with flock (util-linux): ${result.error.message}`);
  if (result.status === 0) return true;
  if (result.status === 1) return false; // held by another process
  throw new Error(`cannot lock DATA_DIR: flock: ${result.stderr.toString().trim() || `exit ${result.status}`}`);
}

function describeHolder(fd: number, dataDir: string): string {
  const record = Buffer.alloc(RECORD_BYTES);
  const length = fs.readSync(fd, record, 0, RECORD_BYTES, 0);
  let holder: Holder | undefined;
  try {
    holder = JSON.parse(record.subarray(0, length).toString()) as Holder;
  } catch {
    // the holder has not written its record yet
  }
  const details: string[] = [];
  // A record whose process is gone belongs to an earlier holder (a shared holder that left, or a holder
  // that has not written its own yet).
  if (holder && isAlive(holder.pid)) {
    details.push(`pid ${holder.pid}`);
    if (holder.role !== 'all') details.push(`${holder.role} role`);
    const apiUrl = apiUrlSince(dataDir, holder.since);
    if (apiUrl) details.push(`API ${apiUrl}`);
  } else {
    details.push('pid unknown');
  }
  return `a node-lifecycle service is already running on DATA_DIR ${dataDir} (${details.join(', ')}); stop it first`;
}

/** The API URL the service writes once it listens, if written since the holder took the lock (not left by an earlier run). */
function apiUrlSince(dataDir: string, since: number): string | undefined {
  const file = path.join(dataDir, 'api-url');
  try {
    // File times come from a coarse clock; a second of slack costs nothing here.
    if (fs.statSync(file).mtimeMs < since - 1000) return undefined;
    return fs.readFileSync(file, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}
