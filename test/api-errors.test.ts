import { generateKeyPairSync } from 'node:crypto';
import { fingerprintOf } from '../src/identity/fingerprint';
import { signRequest } from '../src/identity/request-signature';
import { SERVER_PATHS } from '../src/protocol';
import type { HttpResponse } from './support/http-client';
import { acceptNode, nodeState, startTestAgent, startTestService, type TestAgent, type TestService } from './support/harness';
import { waitFor } from './support/wait-for';

let ts: TestService;
let unmanaged: TestAgent;
let active: TestAgent;

beforeAll(async () => {
  ts = await startTestService();
  unmanaged = await startTestAgent(ts, ts.hostname('waiting'), { announceIntervalMs: 3_600_000 });
  active = await startTestAgent(ts, ts.hostname('running'));
  await waitFor(() => ts.api.get('/api/v1/unmanaged_nodes'), (r) => r.body.length === 2, { what: 'both agents to announce' });
  await acceptNode(ts, active.hostname, active.fingerprint);
  await waitFor(() => nodeState(ts, active.hostname), (s) => s === 'active');
});
afterAll(async () => {
  await unmanaged.stop();
  await active.stop();
  await ts.stop();
});

/** Everything a refused request could have changed, to compare before and after. */
async function snapshot() {
  const [nodes, pending, tasks] = await Promise.all([
    ts.api.get('/api/v1/nodes'),
    ts.api.get('/api/v1/unmanaged_nodes'),
    ts.api.get('/api/v1/tasks'),
  ]);
  // Heartbeats move the seen/announced times; everything else must stay as it was.
  const strip = (n: Record<string, unknown>) => ({ ...n, announced_at: undefined, last_seen_at: undefined, updated_at: undefined });
  return { nodes: nodes.body.map(strip), pending: pending.body.map(strip), tasks: tasks.body };
}

function expectError(res: HttpResponse, status: number, code: string) {
  expect(res.status).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/application\/json/);
  expect(res.body.error.code).toBe(code);
  expect(res.body.error.message).toEqual(expect.any(String));
}

describe('operator authentication', () => {
  test.each([
    ['no token', undefined],
    ['a wrong token', 'not-the-token'],
  ])('%s gets 401', async (_label, token) => {
    expectError(await ts.anonymous.withToken(token).get('/api/v1/nodes'), 401, 'unauthorized');
  });

  test('/healthz needs no token and reports both backends', async () => {
    const res = await ts.anonymous.get('/healthz');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: 'ok', database: 'ok', temporal: 'ok' });
  });
});

describe('accept', () => {
  const url = () => `/api/v1/unmanaged_nodes/${unmanaged.hostname}/accept`;

  test('a fingerprint that does not match is refused with 422 and nothing changes', async () => {
    const before = await snapshot();
    const other = fingerprintOf(generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey);

    const res = await ts.api.post(url(), { hostname: unmanaged.hostname, fingerprint: other });

    expectError(res, 422, 'fingerprint_mismatch');
    expect(res.body.error.field).toBe('fingerprint');
    expect(await snapshot()).toEqual(before);
    await expect(ts.temporal.workflow.getHandle(`node:${unmanaged.hostname}`).describe()).rejects.toThrow(/not found/i);
  });

  test.each([
    ['malformed JSON', { raw: '{"hostname":' }, 400, 'malformed_json', 'body'],
    ['no body', {}, 400, 'validation_failed', 'body'],
    ['a missing fingerprint', { json: { hostname: 'H' } }, 400, 'validation_failed', 'fingerprint'],
    ['a fingerprint of the wrong form', { json: { hostname: 'H', fingerprint: 'md5:aa' } }, 400, 'validation_failed', 'fingerprint'],
    ['an unknown field', { json: { hostname: 'H', fingerprint: 'F', force: true } }, 400, 'validation_failed', 'body'],
    ['a body that is an array', { json: [1] }, 400, 'validation_failed', 'body'],
  ])('%s is refused naming the field, and nothing changes', async (_label, request, status, code, field) => {
    const before = await snapshot();
    const fill = (v: unknown) => JSON.parse(JSON.stringify(v ?? null).replace(/"H"/g, JSON.stringify(unmanaged.hostname)).replace(/"F"/g, JSON.stringify(unmanaged.fingerprint)));
    const options = 'raw' in request ? { raw: request.raw } : 'json' in request ? { json: fill(request.json) } : {};

    const res = await ts.api.request('POST', url(), options);

    expectError(res, status, code);
    const named = [res.body.error.field, ...(res.body.error.fields ?? []).map((f: { field: string }) => f.field)];
    expect(named).toContain(field);
    expect(await snapshot()).toEqual(before);
  });

  test('a body naming another host than the path is refused', async () => {
    const res = await ts.api.post(url(), { hostname: active.hostname, fingerprint: unmanaged.fingerprint });
    expectError(res, 400, 'validation_failed');
    expect(res.body.error.fields[0].field).toBe('hostname');
  });

  test('an unknown host gets 404', async () => {
    const host = ts.hostname('nobody');
    expectError(await acceptNode(ts, host, unmanaged.fingerprint), 404, 'not_found');
  });

  test('an invalid host name in the path gets 400', async () => {
    expectError(await ts.api.post('/api/v1/unmanaged_nodes/bad_name!/accept', { hostname: 'x', fingerprint: 'y' }), 400, 'validation_failed');
  });

  test('accepting a node that is already managed gets 409 with its state', async () => {
    const res = await acceptNode(ts, active.hostname, active.fingerprint);
    expectError(res, 409, 'invalid_state');
    expect(res.body.error).toMatchObject({ state: 'active', allowed: ['commission', 'decommission', 'maintenance', 'rebuild'] });
  });
});

describe('node actions', () => {
  test('reinitialize outside failed gets 409 naming the current state', async () => {
    const before = await snapshot();
    const res = await ts.api.post(`/api/v1/nodes/${active.hostname}/actions`, { action: 'reinitialize' });
    expectError(res, 409, 'invalid_state');
    expect(res.body.error.state).toBe('active');
    expect(await snapshot()).toEqual(before);
  });

  test('reinitialize of an unmanaged node gets 409 and names accept as the way forward', async () => {
    const res = await ts.api.post(`/api/v1/nodes/${unmanaged.hostname}/actions`, { action: 'reinitialize' });
    expectError(res, 409, 'invalid_state');
    expect(res.body.error).toMatchObject({ state: 'unmanaged', allowed: ['accept'] });
  });

  test('an unknown action gets 400 naming the field', async () => {
    const res = await ts.api.post(`/api/v1/nodes/${active.hostname}/actions`, { action: 'explode' });
    expectError(res, 400, 'validation_failed');
    expect(res.body.error.fields).toEqual([{ field: 'action', problem: 'must be one of: reinitialize' }]);
  });

  test('an action on an unknown node gets 404', async () => {
    expectError(await ts.api.post(`/api/v1/nodes/${ts.hostname('ghost')}/actions`, { action: 'reinitialize' }), 404, 'not_found');
  });
});

describe('reads', () => {
  test('an unknown node gets 404', async () => {
    expectError(await ts.api.get(`/api/v1/nodes/${ts.hostname('ghost')}`), 404, 'not_found');
  });

  test('a task id that is not a UUID gets 400, an unknown one 404', async () => {
    expectError(await ts.api.get('/api/v1/tasks/42'), 400, 'validation_failed');
    expectError(await ts.api.get('/api/v1/tasks/00000000-0000-4000-8000-000000000000'), 404, 'not_found');
  });

  test('a bad list filter gets 400 naming it', async () => {
    const res = await ts.api.get('/api/v1/tasks?status=done&limit=0');
    expectError(res, 400, 'validation_failed');
    expect(res.body.error.fields.map((f: { field: string }) => f.field).sort()).toEqual(['limit', 'status']);
    expectError(await ts.api.get('/api/v1/nodes?state=sleeping'), 400, 'validation_failed');
  });

  test('nodes can be filtered by state', async () => {
    const res = await ts.api.get('/api/v1/nodes?state=unmanaged');
    expect(res.body.map((n: { hostname: string }) => n.hostname)).toEqual([unmanaged.hostname]);
  });

  test('an unknown route gets a JSON 404', async () => {
    expectError(await ts.api.get('/api/v1/nothing-here'), 404, 'not_found');
  });
});

describe('agent endpoints', () => {
  const key = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const publicKey = key.publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const announcement = (hostname: string) => ({
    hostname,
    fingerprint: fingerprintOf(key.publicKey),
    public_key: publicKey,
    address: 'https://127.0.0.1:1',
  });
  const signedPost = (path: string, body: unknown, signWith = key.privateKey, at = Date.now()) => {
    const raw = JSON.stringify(body);
    return ts.anonymous.request('POST', path, { raw, headers: signRequest(signWith, 'POST', path, raw, at) });
  };

  test('an unsigned announcement gets 401 and is not recorded', async () => {
    const host = ts.hostname('unsigned');
    expectError(await ts.anonymous.post(SERVER_PATHS.announce, announcement(host)), 401, 'unauthorized');
    expectError(await ts.api.get(`/api/v1/nodes/${host}`), 404, 'not_found');
  });

  test('an announcement signed with another key than the one it shows gets 401', async () => {
    const other = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    expectError(await signedPost(SERVER_PATHS.announce, announcement(ts.hostname('forged')), other.privateKey), 401, 'unauthorized');
  });

  test('a replayed announcement from long ago gets 401', async () => {
    const res = await signedPost(SERVER_PATHS.announce, announcement(ts.hostname('replay')), key.privateKey, Date.now() - 3_600_000);
    expectError(res, 401, 'unauthorized');
  });

  test('a fingerprint that is not the public key\'s gets 400', async () => {
    const body = { ...announcement(ts.hostname('mismatch')), fingerprint: active.fingerprint };
    const res = await signedPost(SERVER_PATHS.announce, body);
    expectError(res, 400, 'bad_request');
    expect(res.body.error.field).toBe('fingerprint');
  });

  test('an address that is not https gets 400 naming it', async () => {
    const res = await signedPost(SERVER_PATHS.announce, { ...announcement(ts.hostname('plain')), address: 'http://127.0.0.1:1' });
    expectError(res, 400, 'validation_failed');
    expect(res.body.error.fields[0].field).toBe('address');
  });

  test('a managed host announcing with a new key gets 409 and keeps its accepted key', async () => {
    const res = await signedPost(SERVER_PATHS.announce, announcement(active.hostname));
    expectError(res, 409, 'conflict');
    expect((await ts.api.get(`/api/v1/nodes/${active.hostname}`)).body.fingerprint).toBe(active.fingerprint);
  });

  test('a first announcement answers 201 with the server key, the next ones 200', async () => {
    const host = ts.hostname('fresh');
    const first = await signedPost(SERVER_PATHS.announce, announcement(host));
    expect(first.status).toBe(201);
    expect(first.body).toEqual({ hostname: host, state: 'unmanaged', accepted: false, server_fingerprint: ts.service.serverFingerprint });
    expect((await signedPost(SERVER_PATHS.announce, announcement(host))).status).toBe(200);
  });

  test('ready from a node not yet accepted gets 409; signed by another key, 401', async () => {
    const host = ts.hostname('eager');
    await signedPost(SERVER_PATHS.announce, announcement(host));
    expectError(await signedPost(SERVER_PATHS.ready, { hostname: host }), 409, 'conflict');
    const other = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    expectError(await signedPost(SERVER_PATHS.ready, { hostname: active.hostname }, other.privateKey), 401, 'unauthorized');
  });
});
