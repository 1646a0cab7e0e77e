import fs from 'node:fs';
import path from 'node:path';

/** One run of a script role, as the agent handed it over on stdin. */
export interface RoleRun {
  role: string;
  hostname: string;
  deployment: string;
  attributes: Record<string, unknown>;
}

/**
 * A script role that records each run as one JSON line in `log` (the input it was given, so the test
 * reads role, node, deployment and attributes from the agents' side, in the order they ran). With an
 * attribute `fail_until` naming a file, it fails (exit 3) while that file does not exist.
 */
export function recordingScript(log: string): string {
  const quoted = `'${log.replace(/'/g, `'\\''`)}'`;
  return [
    '#!/bin/sh',
    "input=$(tr -d '\\n')",
    'case "$input" in',
    `  *'"fail_until":"'*)`,
    `    marker=$(printf '%s' "$input" | sed 's/.*"fail_until":"\\([^"]*\\)".*/\\1/')`,
    '    [ -e "$marker" ] || { echo "waiting for $marker" >&2; exit 3; } ;;',
    'esac',
    // One printf, one write: lines of roles running at once on other nodes do not interleave.
    `printf '%s\\n' "$input" >> ${quoted}`,
    '',
  ].join('\n');
}

/** Every run recorded so far, oldest first. */
export function readRuns(log: string): RoleRun[] {
  if (!fs.existsSync(log)) return [];
  return fs
    .readFileSync(log, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as RoleRun);
}

/** The roles run on each node, in order: `{ node1: ['a', 'b', 'c'] }`. */
export function rolesByNode(runs: RoleRun[]): Record<string, string[]> {
  const byNode: Record<string, string[]> = {};
  for (const run of runs) (byNode[run.hostname] ??= []).push(run.role);
  return byNode;
}

export function writeFile(dir: string, name: string, text: string): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
}
