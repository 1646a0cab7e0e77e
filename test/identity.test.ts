import { execFile } from 'node:child_process';
import { createHash, createPublicKey } from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { AgentClient } from '../src/agent-client';
import { PROJECT_ROOT } from '../src/config';
import { parseAgentPublicKey } from '../src/identity/agent-public-key';
import { fingerprintOf, FINGERPRINT_PATTERN } from '../src/identity/fingerprint';
import { loadOrCreateIdentity } from '../src/identity/identity';
import { resolveApiToken } from '../src/api-token';
import { connectPinned, PinnedKeyMismatch } from '../src/identity/pinned-tls';
import { AGENT_PATHS } from '../src/protocol';
import { nextLoopbackAddress } from './support/ports';

const exec = promisify(execFile);
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'nl-id-'));

test('the fingerprint is SHA-256 over the DER public key, in OpenSSH notation, stable across loads', async () => {
  const dir = tmp();
  const first = await loadOrCreateIdentity(dir, 'n1');
  const second = await loadOrCreateIdentity(dir, 'n1');

  const der = createPublicKey(first.publicKeyPem).export({ type: 'spki', format: 'der' });
  const expected = `SHA256:${createHash('sha256').update(der).digest('base64').replace(/=+$/, '')}`;
  expect(first.fingerprint).toBe(expected);
  expect(first.fingerprint).toMatch(FINGERPRINT_PATTERN);
  expect(second.fingerprint).toBe(first.fingerprint);
  expect(fs.statSync(path.join(dir, 'identity.key')).mode & 0o777).toBe(0o600);
});

test('a key announced again is answered from memory; any other text, or a bad key, is parsed on its own', async () => {
  const identity = await loadOrCreateIdentity(tmp(), 'n3');
  const first = parseAgentPublicKey(identity.publicKeyPem);
  expect(first).toEqual({ pem: identity.publicKeyPem, fingerprint: identity.fingerprint });
  // Every heartbeat carries the same text: the second parse is the remembered outcome itself.
  expect(parseAgentPublicKey(identity.publicKeyPem)).toBe(first);
  // The same key written with CRLF is other text: parsed, and it names the same key.
  const crlf = parseAgentPublicKey(identity.publicKeyPem.replace(/\n/g, '\r\n'));
  expect(crlf).not.toBe(first);
  expect(crlf).toEqual(first);
  // A problem is never remembered as a key: the same bad text is refused every time.
  const bad = identity.publicKeyPem.replace('BEGIN PUBLIC KEY', 'BEGIN PRIVATE KEY');
  expect(parseAgentPublicKey(bad)).toHaveProperty('problem');
  expect(parseAgentPublicKey(bad)).toHaveProperty('problem');
});

test('`nodeagent fingerprint` prints the fingerprint of the key in the state dir on its last line', async () => {
  const dir = tmp();
  const identity = await loadOrCreateIdentity(dir, 'n2');

  const { stdout } = await exec(path.join(PROJECT_ROOT, 'bin', 'nodeagent'), ['fingerprint', '--state-dir', dir]);

  expect(stdout.trim().split('\n').pop()).toBe(identity.fingerprint);
});

test('`nodeagent` without required flags exits non-zero and says which', async () => {
  await expect(exec(path.join(PROJECT_ROOT, 'bin', 'nodeagent'), ['--state-dir', tmp()])).rejects.toMatchObject({
    code: 2,
    stderr: expect.stringContaining('--server is required'),
  });
});

describe('pinned TLS between server and agent', () => {
  let server: https.Server;
  let host: string;
  let port: number;
  let agentKey: Awaited<ReturnType<typeof loadOrCreateIdentity>>;
  let serverKey: Awaited<ReturnType<typeof loadOrCreateIdentity>>;

  beforeAll(async () => {
    agentKey = await loadOrCreateIdentity(tmp(), 'agent');
    serverKey = await loadOrCreateIdentity(tmp(), 'server');
    host = nextLoopbackAddress();
    server = https.createServer({ key: agentKey.privateKeyPem, cert: agentKey.certificatePem }, (_req, res) => {
      res.end(JSON.stringify({ hostname: 'pinned.test' }));
    });
    await new Promise<void>((resolve) => server.listen(0, host, resolve));
    port = (server.address() as { port: number }).port;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  test('a connection to the pinned key succeeds', async () => {
    const client = new AgentClient(serverKey, 2000);
    const body = await client.call(
      { hostname: 'pinned.test', address: `https://${host}:${port}`, fingerprint: agentKey.fingerprint },
      'GET',
      AGENT_PATHS.ping,
    );
    expect(body).toEqual({ hostname: 'pinned.test' });
  });

  test('a peer with another key is refused before any request is sent', async () => {
    const impostorFingerprint = fingerprintOf((await loadOrCreateIdentity(tmp(), 'x')).publicKeyPem);
    let requests = 0;
    server.once('request', () => requests++);
    await expect(
      connectPinned({ host, port, fingerprint: impostorFingerprint, cert: serverKey.certificatePem, key: serverKey.privateKeyPem, timeoutMs: 2000 }),
    ).rejects.toBeInstanceOf(PinnedKeyMismatch);
    expect(requests).toBe(0);
  });
});

test('processes starting together on a fresh DATA_DIR all end with the same complete token and key', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nl-race-'));
  try {
    const tokens = await Promise.all(Array.from({ length: 8 }, () => resolveApiToken(undefined, dir)));
    const keys = await Promise.all(Array.from({ length: 8 }, () => loadOrCreateIdentity(path.join(dir, 'identity'), 'race')));

    expect(new Set(tokens.map((t) => t.token)).size).toBe(1);
    // Never a leading '-', which command lines would take for an option.
    expect(tokens[0]!.token).toMatch(/^[0-9a-f]{48}$/);
    expect(new Set(keys.map((k) => k.fingerprint)).size).toBe(1);
    expect(fs.statSync(path.join(dir, 'api-token')).mode & 0o777).toBe(0o600);
    // No drafts are left behind.
    expect(fs.readdirSync(dir).sort()).toEqual(['api-token', 'identity']);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
