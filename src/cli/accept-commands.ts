import fs from 'node:fs';
import { fingerprintSchema, hostnameSchema } from '../api/validation';
import { CliError, type ApiClient } from './client';
import { table } from './render';
import { progressBar, waitForTask } from './task-watch';

type Out = (text: string) => void;

export const ACCEPT_FROM_FILE_USAGE =
  '  nodectl nodes accept --from-file FILE|- [--no-wait]           accept many hosts, one "hostname fingerprint" a line';

export interface AcceptEntry {
  hostname: string;
  fingerprint: string;
}

/**
 * The accept file: one `hostname fingerprint` a line (what `nodectl nodes unmanaged` prints first),
 * blank lines and # comments ignored. Every bad line is named with its number; nothing is returned then.
 */
export function parseAcceptFile(text: string, source: string): AcceptEntry[] {
  const entries: AcceptEntry[] = [];
  const problems: string[] = [];
  const lineOf = new Map<string, number>();
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = index + 1;
    const fields = raw.replace(/#.*/, '').trim().split(/\s+/).filter(Boolean);
    if (fields.length === 0) return;
    const [hostname, fingerprint] = fields as [string, string | undefined];
    if (fields.length !== 2) problems.push(`${source}:${line}: expected "hostname fingerprint", got ${fields.length} field(s): ${raw.trim()}`);
    // The service's own rules, checked here so that a bad line is named before anything is sent.
    else if (!hostnameSchema.safeParse(hostname).success) problems.push(`${source}:${line}: ${JSON.stringify(hostname)} is not a valid host name (RFC 1123)`);
    else if (!fingerprintSchema.safeParse(fingerprint).success) problems.push(`${source}:${line}: ${JSON.stringify(fingerprint)} does not look like SHA256:<43 base64 characters>`);
    else if (lineOf.has(hostname)) problems.push(`${source}:${line}: ${hostname} is named already on line ${lineOf.get(hostname)}`);
    else {
      lineOf.set(hostname, line);
      entries.push({ hostname, fingerprint: fingerprint! });
    }
  });
  if (problems.length > 0) throw new CliError(`nothing sent; fix these lines:\n  ${problems.join('\n  ')}`, 2);
  if (entries.length === 0) throw new CliError(`nothing sent: ${source} names no host`, 2);
  return entries;
}

function readSource(file: string): string {
  try {
    return fs.readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (err) {
    throw new CliError(`cannot read ${file === '-' ? 'standard input' : file}: ${(err as Error).message}`, 2);
  }
}

/** nodectl nodes accept --from-file: one bulk accept, followed with a progress bar until every node is active or failed. */
export async function acceptFromFile(api: ApiClient, file: string, options: { json: boolean; wait: boolean }, out: Out): Promise<number> {
  const entries = parseAcceptFile(readSource(file), file === '-' ? 'stdin' : file);
  const started = await api.request('POST', '/api/v1/unmanaged_nodes/accept', { nodes: entries });
  if (!options.wait) {
    out(options.json ? JSON.stringify(started) : `accept of ${entries.length} node(s): task ${started.task_id}`);
    return 0;
  }
  const bar = progressBar(options.json);
  const task = await waitForTask(api, started.task_id, bar.update);
  bar.finish();
  const nodes: { hostname: string; status: string; error: string | null }[] = task.nodes ?? [];
  if (options.json) out(JSON.stringify(task, null, 2));
  else {
    out(table(['NODE', 'RESULT', 'ERROR'], nodes.map((n) => [n.hostname, n.status === 'succeeded' ? 'active' : n.status, n.error])));
    out(`accept ${task.status}: ${task.progress.succeeded} active, ${task.progress.failed} failed (task ${task.id})`);
  }
  return task.status === 'succeeded' && nodes.every((n) => n.status === 'succeeded') ? 0 : 1;
}
