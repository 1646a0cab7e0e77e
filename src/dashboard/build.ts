import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { log } from '../log';
import { builtFromLatest } from '../dev/build-freshness';

const ROOT = path.resolve(__dirname, '..', '..');
const SOURCES = path.join(ROOT, 'dashboard');
const CONFIG = path.join(SOURCES, 'vite.config.mts');
/** What the service serves: a symlink to the current build under BUILDS, swapped in one rename. */
export const DASHBOARD_BUILD = path.join(ROOT, 'dist', 'dashboard');
const BUILDS = path.join(ROOT, 'dist', 'dashboard-builds');
/** Builds older than this that are no longer current are removed; a process serving one re-resolves first. */
const KEEP_OLD_BUILDS_MS = 10 * 60 * 1000;

/**
 * Vite is ESM only and jest's CommonJS runtime cannot load it, so the build runs in a child process:
 * Vite's JS API with the dashboard's own config, into a directory no reader looks at yet.
 */
const BUILD_SCRIPT = `
const [vite, configFile, outDir] = process.argv.slice(1);
const { build } = await import(vite);
await build({ configFile, logLevel: 'warn', build: { outDir, emptyOutDir: true } });
`;

function runVite(outDir: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', BUILD_SCRIPT, pathToFileURL(require.resolve('vite')).href, CONFIG, outDir], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    const keep = (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-4000);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`vite build exited with ${code}: ${output.trim()}`))));
  });
}

/** Points DASHBOARD_BUILD at a finished build: a new symlink renamed over the old one, so readers see one or the other. */
async function makeCurrent(dir: string): Promise<void> {
  const stat = await fs.lstat(DASHBOARD_BUILD).catch(() => undefined);
  if (stat?.isDirectory()) {
    // A directory written by a manual `vite build`: moved aside once, the symlink takes its place.
    await fs.rename(DASHBOARD_BUILD, path.join(BUILDS, `manual-${randomBytes(4).toString('hex')}`));
  }
  const link = `${DASHBOARD_BUILD}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  await fs.symlink(path.relative(path.dirname(DASHBOARD_BUILD), dir), link);
  await fs.rename(link, DASHBOARD_BUILD);
}

/** Removes builds that are neither current nor recent (another process may have just made one current). */
async function pruneBuilds(): Promise<void> {
  const current = await fs.realpath(DASHBOARD_BUILD).catch(() => undefined);
  for (const name of await fs.readdir(BUILDS)) {
    const dir = path.join(BUILDS, name);
    if (dir === current) continue;
    const stat = await fs.stat(dir).catch(() => undefined);
    if (stat && Date.now() - stat.mtimeMs > KEEP_OLD_BUILDS_MS) await fs.rm(dir, { recursive: true, force: true });
  }
}

/** Builds the dashboard (dashboard/ with Vite) and makes it current; returns the build's directory. */
export async function buildDashboard(): Promise<string> {
  await fs.mkdir(BUILDS, { recursive: true });
  const dir = path.join(BUILDS, `${Date.now()}-${process.pid}-${randomBytes(4).toString('hex')}`);
  const started = Date.now();
  try {
    await runVite(dir);
  } catch (err) {
    await fs.rm(dir, { recursive: true, force: true });
    throw err;
  }
  await makeCurrent(dir);
  log.info(`dashboard built in ${Date.now() - started} ms`);
  await pruneBuilds().catch((err: unknown) => log.warn(`dashboard: old builds not removed: ${(err as Error).message}`));
  return dir;
}

let pending: Promise<string> | undefined;

/**
 * The directory of the current dashboard build, built first when missing or older than any file under
 * dashboard/. A failed rebuild leaves an older build current: it is served, and the failure logged.
 */
export function ensureDashboard(): Promise<string> {
  pending ??= (async () => {
    if (await builtFromLatest(path.join(DASHBOARD_BUILD, 'index.html'), SOURCES)) return fs.realpath(DASHBOARD_BUILD);
    try {
      return await buildDashboard();
    } catch (err) {
      // No build at all to fall back on: the page answers 503 naming this.
      const previous = await fs.realpath(DASHBOARD_BUILD).catch(() => undefined);
      if (previous === undefined) throw err;
      log.error(`dashboard: the rebuild failed, serving the previous build: ${(err as Error).message}`);
      return previous;
    }
  })().finally(() => {
    pending = undefined;
  });
  return pending;
}
