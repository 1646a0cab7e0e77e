import fs from 'node:fs/promises';
import path from 'node:path';

/**
 * dnsmasq's dhcp-script is called with `add|old|del MAC IP [HOSTNAME]` for every lease. The script the
 * provisioner installs appends one line per event to a log beside it; the provisioner reads the log.
 * A file rather than an HTTP call: it needs nothing but a shell where dnsmasq runs (often a namespace or
 * another host's disk share), and nothing is lost while the worker is down.
 */
export const LEASE_SCRIPT = 'lease-event.sh';
export const LEASE_LOG = 'lease-events.log';

const SCRIPT = `#!/bin/sh
# dnsmasq dhcp-script (written by node-lifecycle's provisioner): one line per lease event.
# Fields: milliseconds since the epoch, action (add|old|del), MAC, IP, hostname.
echo "$(date +%s%3N) $1 $2 $3 \${4:-}" >> "$(dirname "$0")/${LEASE_LOG}"
`;

export async function installLeaseScript(dir: string): Promise<string> {
  const file = path.join(dir, LEASE_SCRIPT);
  const current = await fs.readFile(file, 'utf8').catch(() => null);
  if (current !== SCRIPT) {
    await fs.writeFile(`${file}.tmp`, SCRIPT, { mode: 0o755 });
    await fs.rename(`${file}.tmp`, file);
  }
  return file;
}

export interface LeaseEvent {
  at: number;
  action: 'add' | 'old' | 'del';
  mac: string;
  ip: string;
}

export function parseLeaseLine(line: string): LeaseEvent | null {
  const [at, action, mac, ip] = line.trim().split(/\s+/);
  if (!at || !/^\d+$/.test(at) || (action !== 'add' && action !== 'old' && action !== 'del') || !mac || !ip) return null;
  return { at: Number(at), action, mac: mac.toLowerCase(), ip };
}

/**
 * Follows the lease log: every poll hands the new complete lines to `onEvent`. It starts with the
 * events of the last `lookBackMs`, so a worker that was down does not miss a lease of a running install
 * (a repeat is harmless: an install takes the first lease after its power cycle).
 */
export class LeaseLogFollower {
  private offset = 0;
  private timer: NodeJS.Timeout | undefined;
  private reading: Promise<void> = Promise.resolve();
  private readonly since: number;

  constructor(
    private readonly file: string,
    private readonly onEvent: (event: LeaseEvent) => Promise<void>,
    lookBackMs = 3_600_000,
    private readonly pollMs = 500,
  ) {
    this.since = Date.now() - lookBackMs;
  }

  start(): void {
    this.timer = setInterval(() => {
      this.reading = this.reading.then(() => this.poll()).catch(() => undefined);
    }, this.pollMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.reading;
  }

  async poll(): Promise<void> {
    const handle = await fs.open(this.file, 'r').catch(() => null);
    if (!handle) return;
    try {
      const { size } = await handle.stat();
      if (size < this.offset) this.offset = 0; // rotated or truncated
      if (size === this.offset) return;
      const buffer = Buffer.alloc(size - this.offset);
      await handle.read(buffer, 0, buffer.length, this.offset);
      const text = buffer.toString('utf8');
      const complete = text.lastIndexOf('\n') + 1;
      this.offset += Buffer.byteLength(text.slice(0, complete));
      for (const line of text.slice(0, complete).split('\n')) {
        const event = parseLeaseLine(line);
        if (event && event.at >= this.since) await this.onEvent(event);
      }
    } finally {
      await handle.close();
    }
  }
}
