import { isIP } from 'node:net';

/** Where to reach a machine over SSH: host (name or IP) and port, written canonically as its key. */
export interface SshAddress {
  host: string;
  port: number;
  /** `host:port` (IPv6 in brackets), lower case: two spellings of one address have one key. */
  key: string;
}

export const DEFAULT_SSH_PORT = 22;
const DNS_NAME = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*\.?$/;

/**
 * Parses `10.0.0.5`, `host.example:2222`, `[fd00::5]:22` or a bare IPv6 address. Returns the problem
 * in words when the text is not an address, so a request can name every offender at once.
 */
export function parseSshAddress(text: string): SshAddress | { problem: string } {
  const trimmed = text.trim().toLowerCase();
  let host = trimmed;
  let portText: string | undefined;
  const bracketed = /^\[([^\]]+)\](?::(.*))?$/.exec(trimmed);
  if (bracketed) {
    host = bracketed[1]!;
    portText = bracketed[2];
    if (isIP(host) !== 6) return { problem: 'has brackets around something that is not an IPv6 address' };
  } else if (isIP(trimmed) === 6) {
    host = trimmed;
  } else if (trimmed.includes(':')) {
    const at = trimmed.lastIndexOf(':');
    host = trimmed.slice(0, at);
    portText = trimmed.slice(at + 1);
  }
  if (host === '') return { problem: 'has no host' };
  if (isIP(host) === 0 && !DNS_NAME.test(host)) return { problem: 'is neither an IP address nor a DNS name' };
  let port = DEFAULT_SSH_PORT;
  if (portText !== undefined) {
    if (!/^\d{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65_535) {
      return { problem: `has port ${JSON.stringify(portText)}; a port is a number from 1 to 65535` };
    }
    port = Number(portText);
  }
  host = host.replace(/\.$/, '');
  return { host, port, key: `${isIP(host) === 6 ? `[${host}]` : host}:${port}` };
}

/** For callers that validated the address already. */
export function sshAddressOf(text: string): SshAddress {
  const parsed = parseSshAddress(text);
  if ('problem' in parsed) throw new Error(`${JSON.stringify(text)} ${parsed.problem}`);
  return parsed;
}
