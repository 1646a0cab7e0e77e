import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { build } from 'esbuild';
import { builtFromLatest } from './build-freshness';

const ROOT = path.resolve(__dirname, '..', '..');
const ENTRY = path.join(ROOT, 'src', 'agent', 'cli.ts');
export const AGENT_BUNDLE = path.join(ROOT, 'dist', 'nodeagent.cjs');

/**
 * Bundles the node agent (src/agent/cli.ts) into one CommonJS file that plain `node` runs with no
 * node_modules: what an installed OS gets. Writes to a temp file and renames it, so a concurrent
 * caller (another jest worker) sees either the old bundle or the new one, never half of one.
 */
export async function buildAgentBundle(outfile = AGENT_BUNDLE): Promise<string> {
  const result = await build({
    entryPoints: [ENTRY],
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    write: false,
    outfile,
    // eslint lints every file under the repo, dist/ too: generated code is not ours to lint.
    banner: { js: '#!/usr/bin/env node\n/* eslint-disable */' },
    logLevel: 'silent',
  });
  const code = result.outputFiles.find((file) => file.path === outfile);
  if (!code) throw new Error(`esbuild produced no ${outfile}`);
  await fs.mkdir(path.dirname(outfile), { recursive: true });
  const temp = `${outfile}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  await fs.writeFile(temp, code.contents, { mode: 0o755 });
  await fs.rename(temp, outfile);
  return outfile;
}

let pending: Promise<string> | undefined;

/** The agent bundle's path, built first when missing or older than any source under src/. */
export function ensureAgentBundle(): Promise<string> {
  pending ??= (async () => {
    if (await builtFromLatest(AGENT_BUNDLE, path.join(ROOT, 'src'))) return AGENT_BUNDLE;
    return buildAgentBundle();
  })().finally(() => {
    pending = undefined;
  });
  return pending;
}
