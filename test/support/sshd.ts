import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { waitFor } from './wait-for';

/** OpenSSH's sshd from Debian, as a test process: its own host keys, authorized_keys and config, on one loopback address. */
export interface TestSshd {
  host: string;
  port: number;
  /** host:port as the API writes it. */
  address: string;
  /** `SHA256:...` of each host key, by type (ed25519, ecdsa, rsa). */
  fingerprints: Record<string, string>;
  dir: string;
  /** The sshd log (LogLevel VERBOSE): what it accepted and refused. */
  log(): string;
  stop(): Promise<void>;
}

export const SSHD = '/usr/sbin/sshd';

const KEYGEN_TYPES: Record<string, string[]> = { ed25519: ['-t', 'ed25519'], ecdsa: ['-t', 'ecdsa', '-b', '256'], rsa: ['-t', 'rsa', '-b', '2048'] };

function fingerprintOf(pubFile: string): string {
  // `256 SHA256:xxx comment (ED25519)`
  return execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', pubFile], { encoding: 'utf8' }).split(' ')[1]!;
}

async function portOpen(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export async function startSshd(options: { host: string; port: number; authorizedKeys: string[]; keyTypes?: string[] }): Promise<TestSshd> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nl-sshd-'));
  // sshd refuses to start without its privilege separation directory.
  fs.mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const fingerprints: Record<string, string> = {};
  const hostKeyLines: string[] = [];
  for (const type of options.keyTypes ?? ['ed25519']) {
    const file = path.join(dir, `ssh_host_${type}_key`);
    execFileSync('ssh-keygen', [...KEYGEN_TYPES[type]!, '-N', '', '-q', '-C', `test-${type}`, '-f', file]);
    fingerprints[type] = fingerprintOf(`${file}.pub`);
    hostKeyLines.push(`HostKey ${file}`);
  }
  // sshd reads authorized_keys as the user logging in: a non-root test user must be able to reach it.
  fs.chmodSync(dir, 0o755);
  fs.writeFileSync(path.join(dir, 'authorized_keys'), `${options.authorizedKeys.join('\n')}\n`, { mode: 0o644 });
  const config = [
    `ListenAddress ${options.host}:${options.port}`,
    ...hostKeyLines,
    `AuthorizedKeysFile ${path.join(dir, 'authorized_keys')}`,
    'StrictModes no',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'UsePAM no',
    'PermitRootLogin prohibit-password',
    `PidFile ${path.join(dir, 'sshd.pid')}`,
    'LogLevel VERBOSE',
  ].join('\n');
  const configFile = path.join(dir, 'sshd_config');
  fs.writeFileSync(configFile, `${config}\n`);
  let log = '';
  const child: ChildProcess = spawn(SSHD, ['-D', '-e', '-f', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (d: Buffer) => (log += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let ended = false;
  void exited.then(() => (ended = true));
  await waitFor(
    async () => (ended ? 'exited' : (await portOpen(options.host, options.port)) ? 'open' : 'closed'),
    (state) => state !== 'closed',
    { what: `sshd on ${options.host}:${options.port}`, timeoutMs: 60_000, intervalMs: 100 },
  );
  if (ended) throw new Error(`sshd did not start: ${log}`);
  return {
    host: options.host,
    port: options.port,
    address: `${options.host}:${options.port}`,
    fingerprints,
    dir,
    log: () => log,
    async stop() {
      if (!ended) {
        child.kill('SIGTERM');
        await exited;
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
