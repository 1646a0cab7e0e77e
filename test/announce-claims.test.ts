import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import knexFactory, { type Knex } from 'knex';
import { fingerprintOf } from '../src/identity/fingerprint';
import { signRequest } from '../src/identity/request-signature';
import { SERVER_PATHS } from '../src/protocol';
import type { HttpResponse } from './support/http-client';
import { acceptNode, nodeState, startTestAgent, startTestService, type TestAgent, type TestService } from './support/harness';
import { nodectl } from './support/nodectl';
import { waitFor } from './support/wait-for';

let ts: TestService;
let db: Knex | undefined;
const agents: TestAgent[] = [];

beforeAll(async () => {
  ts = await startTestService();
  // Direct reads prove what was (not) stored; the embedded database serves only the service's one connection.
  if (ts.config.databaseUrl) db = knexFactory({ client: 'pg', connection: ts.config.databaseUrl, pool: { min: 0, max: 1 } });
});
afterAll(async () => {
  await Promise.all(agents.map((a) => a.stop()));
  await db?.destroy();
  await ts.stop();
});

interface Keys {
  publicKey: KeyObject;
  privateKey: KeyObject;
}

const p256 = (): Keys => generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
const spkiPem = (k: Keys) => k.publicKey.export({ type: 'spki', format: 'pem' }).toString();
const pemOf = (der: Buffer) => `-----BEGIN PUBLIC KEY-----\n${der.toString('base64').match(/.{1,64}/g)!.join('\n')}\n-----END PUBLIC KEY-----\n`;

/** An announcement as anyone on the network can send it: self-signed, no operator token. */
function announce(hostname: string, keys: Keys, address: string, overrides: Record<string, unknown> = {}): Promise<HttpResponse> {
  const body = JSON.stringify({ hostname, fingerprint: fingerprintOf(keys.publicKey), public_key: spkiPem(keys), address, ...overrides });
  const path = SERVER_PATHS.announce;
  return ts.anonymous.request('POST', path, { raw: body, headers: signRequest(keys.privateKey, 'POST', path, body) });
}

interface Listed {
  hostname: string;
  fingerprint: string;
  address: string;
  announced_at: string;
  last_seen_at: string;
  claims: number;
  conflict: boolean;
}

async function listed(hostname: string): Promise<Listed[]> {
  const res = await ts.api.get('/api/v1/unmanaged_nodes');
  expect(res.status).toBe(200);
  return (res.body as Listed[]).filter((n) => n.hostname === hostname);
}

async function agent(label: string): Promise<TestAgent> {
  const a = await startTestAgent(ts, ts.hostname(label));
  agents.push(a);
  await waitFor(() => listed(a.hostname), (l) => l.some((n) => n.fingerprint === a.fingerprint), { what: `${a.hostname} to announce` });
  return a;
}

async function eventsOf(hostname: string): Promise<{ type: string; event: string; cause: string }[]> {
  return (await ts.api.get(`/api/v1/nodes/${hostname}`)).body.events;
}

function expectFieldError(res: HttpResponse, field: string) {
  expect(res.status).toBe(400);
  expect([res.body.error.field, ...(res.body.error.fields ?? []).map((f: { field: string }) => f.field)]).toContain(field);
}

/** Nothing about the host reached the database: no node, no claim. */
async function expectNothingStored(hostname: string) {
  expect((await ts.api.get(`/api/v1/nodes/${hostname}`)).status).toBe(404);
  expect(await listed(hostname)).toEqual([]);
  if (db) {
    expect(await db('nodes').where({ hostname })).toEqual([]);
    expect(await db('node_claims').where({ hostname })).toEqual([]);
  }
}

describe('several keys claiming one pending hostname', () => {
  test('an impostor announcing for a pending hostname changes neither its listed key nor its address', async () => {
    const a = await agent('victim');
    const impostor = p256();

    const res = await announce(a.hostname, impostor, 'https://127.0.0.66:443');

    expect(res.status).toBeLessThan(300);
    expect(res.body.accepted).toBe(false);
    const own = (await listed(a.hostname)).find((n) => n.fingerprint === a.fingerprint);
    expect(own).toMatchObject({ fingerprint: a.fingerprint, address: a.handle.address });
    const node = (await ts.api.get(`/api/v1/nodes/${a.hostname}`)).body;
    expect(node).toMatchObject({ state: 'unmanaged', fingerprint: a.fingerprint, address: a.handle.address });
  });

  test('both keys are listed side by side, each marked as a conflict; the true agent keeps announcing', async () => {
    const a = await agent('contested');
    const impostor = p256();
    await announce(a.hostname, impostor, 'https://127.0.0.67:443');
    const before = await listed(a.hostname);

    expect(before.map((n) => n.fingerprint).sort()).toEqual([a.fingerprint, fingerprintOf(impostor.publicKey)].sort());
    for (const entry of before) {
      expect(entry).toMatchObject({ claims: 2, conflict: true, announced_at: expect.any(String), last_seen_at: expect.any(String) });
    }
    // The agent announces every 200 ms: its own claim stays fresh, the other claim does not take it over.
    const ownBefore = before.find((n) => n.fingerprint === a.fingerprint)!;
    await waitFor(
      () => listed(a.hostname),
      (l) => l.some((n) => n.fingerprint === a.fingerprint && Date.parse(n.last_seen_at) > Date.parse(ownBefore.last_seen_at)),
      { what: 'a heartbeat from the true agent' },
    );
    expect((await listed(a.hostname)).find((n) => n.fingerprint === a.fingerprint)!.address).toBe(a.handle.address);
  });

  test('nodectl lists both keys and warns of the conflict', async () => {
    const host = ts.hostname('cli-contested');
    const [first, second] = [p256(), p256()];
    await announce(host, first, 'https://127.0.0.77:443');
    await announce(host, second, 'https://127.0.0.78:443');

    const { code, stdout } = await nodectl(ts, ['nodes', 'unmanaged']);

    expect(code).toBe(0);
    const rows = stdout.split('\n').filter((l) => l.startsWith(host));
    expect(rows).toEqual([expect.stringContaining(fingerprintOf(first.publicKey)), expect.stringContaining(fingerprintOf(second.publicKey))]);
    for (const row of rows) expect(row).toContain('2 (conflict)');
    expect(stdout).toMatch(new RegExp(`warning: more than one key claims .*${host.replace(/\./g, '\\.')}`));
  });

  test('a single claim is listed without a conflict, and the same key may move to a new address', async () => {
    const host = ts.hostname('moving');
    const keys = p256();
    expect((await announce(host, keys, 'https://127.0.0.68:443')).status).toBe(201);

    const res = await announce(host, keys, 'https://127.0.0.69:443');

    expect(res.status).toBe(200);
    expect(await listed(host)).toEqual([
      expect.objectContaining({ fingerprint: fingerprintOf(keys.publicKey), address: 'https://127.0.0.69:443', claims: 1, conflict: false }),
    ]);
  });

  test('accepting the true fingerprint: the node takes the true key and address, the impostor is rejected, recorded, and refused after', async () => {
    // The impostor comes first, so the node row starts out with its key: accept must take the chosen claim's.
    const host = ts.hostname('first-come');
    const impostor = p256();
    const impostorFingerprint = fingerprintOf(impostor.publicKey);
    expect((await announce(host, impostor, 'https://127.0.0.70:443')).status).toBe(201);
    const a = await startTestAgent(ts, host);
    agents.push(a);
    await waitFor(() => listed(host), (l) => l.length === 2, { what: 'both claims to be listed' });

    const res = await acceptNode(ts, host, a.fingerprint);

    expect(res.status).toBe(202);
    await waitFor(() => nodeState(ts, host), (s) => s === 'active', { what: `${host} to be active` });
    const node = (await ts.api.get(`/api/v1/nodes/${host}`)).body;
    expect(node).toMatchObject({ fingerprint: a.fingerprint, address: a.handle.address });
    const rejections = node.events.filter((e: { cause: string | null }) => e.cause?.includes(impostorFingerprint));
    expect(rejections).toEqual([expect.objectContaining({ type: 'claim', event: 'reject_claim' })]);
    if (db) {
      expect(await db('node_claims').where({ hostname: host }).orderBy('status').select('fingerprint', 'status')).toEqual([
        { fingerprint: a.fingerprint, status: 'accepted' },
        { fingerprint: impostorFingerprint, status: 'rejected' },
      ]);
    }
    const again = await announce(host, impostor, 'https://127.0.0.70:443');
    expect(again.status).toBe(409);
    expect(await listed(host)).toEqual([]);
  });

  test('the impostor can be accepted only by its own fingerprint, the operator\'s explicit choice; then the other key is rejected', async () => {
    const host = ts.hostname('explicit');
    const genuine = p256();
    const other = p256();
    const otherFingerprint = fingerprintOf(other.publicKey);
    await announce(host, genuine, 'https://127.0.0.71:443');
    await announce(host, other, 'https://127.0.0.72:443');

    const unknown = await acceptNode(ts, host, fingerprintOf(p256().publicKey));
    expect(unknown.status).toBe(422);
    expect(unknown.body.error).toMatchObject({ code: 'fingerprint_mismatch', field: 'fingerprint' });
    expect(await nodeState(ts, host)).toBe('unmanaged');
    expect(await listed(host)).toHaveLength(2);

    const res = await acceptNode(ts, host, otherFingerprint);

    expect(res.status).toBe(202);
    // The accept is queued at the 202 and applied by the node's workflow.
    const node = (await waitFor(() => ts.api.get(`/api/v1/nodes/${host}`), (r) => r.body.state !== 'unmanaged', { what: 'the accept to be applied' })).body;
    expect(node).toMatchObject({ fingerprint: otherFingerprint, address: 'https://127.0.0.72:443' });
    expect((await eventsOf(host)).filter((e) => e.event === 'reject_claim').map((e) => e.cause)).toEqual([
      expect.stringContaining(fingerprintOf(genuine.publicKey)),
    ]);
    expect((await announce(host, genuine, 'https://127.0.0.71:443')).status).toBe(409);
  });
});

describe('the announced key', () => {
  test.each([
    ['RSA-1024', () => generateKeyPairSync('rsa', { modulusLength: 1024 })],
    ['RSA-2048', () => generateKeyPairSync('rsa', { modulusLength: 2048 })],
    ['EC P-384', () => generateKeyPairSync('ec', { namedCurve: 'secp384r1' })],
    ['EC secp256k1', () => generateKeyPairSync('ec', { namedCurve: 'secp256k1' })],
  ])('an %s key, properly signed, is refused with 400 naming public_key, and nothing is stored', async (label, make) => {
    const host = ts.hostname(`weak-${label.replace(/[^a-z0-9]/gi, '').toLowerCase()}`);

    const res = await announce(host, make(), 'https://127.0.0.73:443');

    expectFieldError(res, 'public_key');
    await expectNothingStored(host);
  });

  test.each([
    ['pkcs8', { type: 'pkcs8', format: 'pem' }],
    ['sec1', { type: 'sec1', format: 'pem' }],
  ] as const)('a %s private key sent as public_key is refused with 400, stored nowhere and logged nowhere', async (label, encoding) => {
    const host = ts.hostname(`leaked-${label}`);
    const keys = p256();
    const privatePem = keys.privateKey.export(encoding).toString();
    const secret = privatePem.split('\n')[1]!;
    const lines: string[] = [];
    const capture = (...args: unknown[]) => void lines.push(args.map(String).join(' '));
    const spies = [jest.spyOn(console, 'log').mockImplementation(capture), jest.spyOn(console, 'error').mockImplementation(capture), jest.spyOn(console, 'warn').mockImplementation(capture)];
    const level = process.env.LOG_LEVEL;
    process.env.LOG_LEVEL = 'debug';
    let res: HttpResponse;
    try {
      res = await announce(host, keys, 'https://127.0.0.74:443', { public_key: privatePem });
    } finally {
      process.env.LOG_LEVEL = level;
      spies.forEach((s) => s.mockRestore());
    }

    expectFieldError(res, 'public_key');
    expect(JSON.stringify(res.body)).not.toContain(secret);
    expect(lines.filter((l) => l.includes(secret) || l.includes('PRIVATE KEY'))).toEqual([]);
    await expectNothingStored(host);
  });

  test.each([
    ['text before the block', (pem: string) => `hello\n${pem}`],
    ['text after the block', (pem: string) => `${pem}trailing junk\n`],
    ['the block twice', (pem: string) => `${pem}${pem}`],
    ['a private key after the block', (pem: string, keys: Keys) => `${pem}${keys.privateKey.export({ type: 'pkcs8', format: 'pem' })}`],
    ['bytes after the key inside the block', (_pem: string, keys: Keys) => pemOf(Buffer.concat([keys.publicKey.export({ type: 'spki', format: 'der' }), Buffer.from([0, 0])]))],
  ])('a valid P-256 public key with %s is refused with 400 naming public_key', async (label, wrap) => {
    const host = ts.hostname(`junk-${label.replace(/[^a-z0-9]/gi, '').toLowerCase()}`.slice(0, 40));
    const keys = p256();

    const res = await announce(host, keys, 'https://127.0.0.75:443', { public_key: wrap(spkiPem(keys), keys) });

    expectFieldError(res, 'public_key');
    await expectNothingStored(host);
  });

  test('only the re-exported public key is stored, whatever line endings it came with', async () => {
    const host = ts.hostname('canonical');
    const keys = p256();

    const res = await announce(host, keys, 'https://127.0.0.76:443', { public_key: spkiPem(keys).replace(/\n/g, '\r\n') });

    expect(res.status).toBe(201);
    if (db) {
      expect(await db('nodes').where({ hostname: host }).pluck('public_key')).toEqual([spkiPem(keys)]);
      expect(await db('node_claims').where({ hostname: host }).pluck('public_key')).toEqual([spkiPem(keys)]);
    }
  });
});
