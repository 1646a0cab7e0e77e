import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * What the agent does to its host. With a sandbox, every file goes under the sandbox directory and
 * services and reboots are simulated; without one, they are real (systemd).
 */
export class HostOperations {
  constructor(private readonly sandbox: string | undefined) {}

  /** A path on the managed host, moved under the sandbox when there is one. */
  hostPath(absolute: string): string {
    return this.sandbox ? path.join(this.sandbox, absolute) : absolute;
  }

  /** Sandbox failure injection: a file fail/<operation> makes that operation fail with its content. */
  async injectedFailure(operation: string): Promise<string | undefined> {
    if (!this.sandbox) return undefined;
    try {
      return (await fs.readFile(path.join(this.sandbox, 'fail', operation), 'utf8')).trim() || `${operation} failed (injected)`;
    } catch {
      return undefined;
    }
  }

  /** Sandbox slowness injection: a file slow/<operation> holding milliseconds delays that operation. */
  async injectedDelay(operation: string): Promise<number> {
    if (!this.sandbox) return 0;
    const text = await fs.readFile(path.join(this.sandbox, 'slow', operation), 'utf8').catch(() => '0');
    return Math.max(0, Number(text.trim()) || 0);
  }

  private get monitoringFile(): string {
    return this.hostPath('/etc/nodeagent/monitoring.json');
  }

  private async writeMonitoring(config: Record<string, unknown>): Promise<string> {
    const file = this.monitoringFile;
    await fs.mkdir(path.dirname(file), { recursive: true });
    await fs.writeFile(`${file}.tmp`, JSON.stringify(config, null, 2));
    await fs.rename(`${file}.tmp`, file);
    return file;
  }

  async configureMonitoring(settings: { endpoint: string; hostname: string }): Promise<string> {
    return this.writeMonitoring({ endpoint: settings.endpoint, hostname: settings.hostname, interval_seconds: 10, silenced: false });
  }

  /** Maintenance marks monitoring silenced (alerts off), commission lifts it. */
  async setMonitoringSilenced(silenced: boolean): Promise<string> {
    const current = JSON.parse(await fs.readFile(this.monitoringFile, 'utf8').catch(() => '{}')) as Record<string, unknown>;
    return this.writeMonitoring({ ...current, silenced });
  }

  async startServices(services: string[]): Promise<Record<string, string>> {
    const states: Record<string, string> = {};
    for (const service of services) {
      if (!/^[A-Za-z0-9@._-]+$/.test(service)) throw new Error(`invalid service name ${JSON.stringify(service)}`);
      if (this.sandbox) {
        const dir = this.hostPath('/run/nodeagent/services');
        await fs.mkdir(dir, { recursive: true });
        await fs.writeFile(path.join(dir, service), `running since ${new Date().toISOString()}\n`);
      } else {
        await run('systemctl', ['enable', '--now', service]);
      }
      states[service] = 'running';
    }
    return states;
  }

  /** Real mode only; the sandbox reboot is handled by the agent, which goes away and comes back. */
  async rebootHost(): Promise<void> {
    await run('systemctl', ['reboot']);
  }
}
