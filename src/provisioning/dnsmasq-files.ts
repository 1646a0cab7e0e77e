import fs from 'node:fs/promises';
import path from 'node:path';
import type { BootEntry } from './boot-entries-repo';

/**
 * dnsmasq's per-node files, written so that dnsmasq picks every change up at once without a signal
 * (pxe-vm.md): a new or changed file in dhcp-hostsdir applies immediately, but a deleted one is served
 * until SIGHUP, and SIGHUP crashes dnsmasq 2.90 with tagged entries. So nothing is ever deleted from
 * hosts.d: a host that must not be served gets an `ignore` entry, and no entry uses `set:` tags.
 * DNS's hostsdir applies deletions at once, so a removed host's DNS file is simply removed.
 */
export const DNSMASQ_DIRS = { hosts: 'hosts.d', options: 'opts.d', dns: 'dns.d' } as const;

export function hostLine(entry: BootEntry): string {
  return entry.enabled ? `${entry.mac},${entry.hostname},${entry.address},${entry.hostname},1h\n` : ignoreLine(entry.mac);
}
function ignoreLine(mac: string): string {
  return `${mac},ignore\n`;
}
function dnsLine(entry: BootEntry): string {
  return `${entry.address} ${entry.hostname}\n`;
}
/** A MAC a node no longer has keeps a file of its own, disabled (hosts.d never loses a line). */
function retiredFile(mac: string): string {
  return `retired-${mac.replace(/:/g, '-')}`;
}

/** Writes content atomically (temp file, fsync, rename) unless the file holds it already. Returns true if written. */
async function writeIfChanged(file: string, content: string): Promise<boolean> {
  const current = await fs.readFile(file, 'utf8').catch(() => null);
  if (current === content) return false;
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  const handle = await fs.open(temp, 'w', 0o644);
  try {
    await handle.writeFile(content);
    // dnsmasq reads these after dropping root: readable by all, whatever the umask.
    await handle.chmod(0o644);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await fs.rename(temp, file);
  return true;
}

export async function ensureDnsmasqDirs(dir: string): Promise<void> {
  for (const sub of Object.values(DNSMASQ_DIRS)) await fs.mkdir(path.join(dir, sub), { recursive: true });
}

/**
 * Makes the directory say what the entries say: one hosts.d and one dns.d file per entry; hosts.d files
 * of hosts that are gone become ignore entries; retired MACs get ignore entries. Returns what it wrote.
 */
export async function writeDnsmasqFiles(dir: string, entries: BootEntry[], retiredMacs: string[] = []): Promise<string[]> {
  await ensureDnsmasqDirs(dir);
  const hostsDir = path.join(dir, DNSMASQ_DIRS.hosts);
  const dnsDir = path.join(dir, DNSMASQ_DIRS.dns);
  const written: string[] = [];
  const note = async (file: string, content: string) => {
    if (await writeIfChanged(file, content)) written.push(path.relative(dir, file));
  };
  const names = new Set(entries.map((e) => e.hostname));
  for (const entry of entries) {
    await note(path.join(hostsDir, entry.hostname), hostLine(entry));
    await note(path.join(dnsDir, entry.hostname), dnsLine(entry));
  }
  for (const mac of retiredMacs) await note(path.join(hostsDir, retiredFile(mac)), ignoreLine(mac));
  for (const file of await fs.readdir(hostsDir)) {
    if (file.startsWith('.') || names.has(file) || file.startsWith('retired-')) continue;
    const mac = (await fs.readFile(path.join(hostsDir, file), 'utf8')).split(',')[0]?.trim();
    if (mac) await note(path.join(hostsDir, file), ignoreLine(mac));
  }
  for (const file of await fs.readdir(dnsDir)) {
    if (file.startsWith('.') || names.has(file)) continue;
    await fs.rm(path.join(dnsDir, file), { force: true });
    written.push(path.join(DNSMASQ_DIRS.dns, file));
  }
  return written;
}
