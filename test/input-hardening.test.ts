import { generateKeyPairSync } from 'node:crypto';
import http from 'node:http';
import { signRequest } from '../src/identity/request-signature';
import { SERVER_PATHS } from '../src/protocol';
import type { HttpResponse } from './support/http-client';
import { acceptNode, nodeState, startTestAgent, startTestService, type TestAgent, type TestService } from './support/harness';
import { waitFor } from './support/wait-for';

let ts: TestService;
let active: TestAgent;
/** Enrolled nodes (ipmi, never powered): what PATCH and the name filters act on. */
const enrolled: string[] = [];

const driverInfo = { ipmi_address: '127.0.0.1', ipmi_username: 'admin', ipmi_password: 'secret' };

beforeAll(async () => {
  ts = await startTestService();
  active = await startTestAgent(ts, ts.hostname('running'));
  await waitFor(() => ts.api.get('/api/v1/unmanaged_nodes'), (r) => r.body.length === 1, { what: 'the agent to announce' });
  await acceptNode(ts, active.hostname, active.fingerprint);
  await waitFor(() => nodeState(ts, active.hostname), (s) => s === 'active', { what: `${active.hostname} to be active` });
  for (const label of ['alpha', 'beta', 'gamma']) {
    const res = await ts.api.post('/api/v1/nodes', { name: ts.hostname(label), driver: 'ipmi', driver_info: driverInfo });
    expect(res.status).toBe(201);
    enrolled.push(ts.hostname(label));
  }
});
afterAll(async () => {
  await active?.stop();
  await ts?.stop();
});

/** Everything a refused request could have changed, to compare before and after. */
async function snapshot() {
  const [nodes, tasks, events, details] = await Promise.all([
    ts.api.get('/api/v1/nodes'),
    ts.api.get('/api/v1/tasks'),
    ts.api.get('/api/v1/events'),
    Promise.all(enrolled.map((name) => ts.api.get(`/api/v1/nodes/${name}`))),
  ]);
  // The agent's announcements and heartbeats move the active node's times; everything else, updated_at of
  // the enrolled nodes included, must stay.
  const strip = (n: Record<string, unknown>) =>
    n.hostname === active.hostname ? { ...n, announced_at: undefined, last_seen_at: undefined, updated_at: undefined } : n;
  // Its reachability events are the agent's doing too (a heartbeat late on a starved machine), not the request's.
  const ownReachability = (e: { type: string; nodes: string[] }) => ['discovered', 'disappeared'].includes(e.type) && e.nodes.every((n) => n === active.hostname);
  const clusterEvents = (events.body as { type: string; nodes: string[] }[]).filter((e) => !ownReachability(e));
  return { nodes: nodes.body.map(strip), tasks: tasks.body, events: clusterEvents, details: details.map((d) => d.body) };
}

const patch = (path: string, json: unknown) => ts.api.request('PATCH', path, { json });

function fieldsOf(res: HttpResponse): string[] {
  return [res.body?.error?.field, ...(res.body?.error?.fields ?? []).map((f: { field: string }) => f.field)].filter(Boolean);
}

function expectRefused(res: HttpResponse, ...fields: string[]) {
  expect({ status: res.status, code: res.body?.error?.code }).toEqual({ status: 400, code: 'validation_failed' });
  expect(fieldsOf(res)).toEqual(expect.arrayContaining(fields));
}

/** Sends exact bytes, so a test can put what no JavaScript string encodes (invalid UTF-8) on the wire. */
function sendBytes(method: string, path: string, body: Buffer): Promise<HttpResponse> {
  const url = new URL(path, ts.service.apiUrl);
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      { method, headers: { authorization: `Bearer ${ts.service.apiToken}`, 'content-type': 'application/json', 'content-length': body.length } },
      (res) => {
        let text = '';
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text), headers: new Headers() }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

describe('NUL characters and lone surrogates are refused naming the field, and change nothing', () => {
  const commission = (raw: string) => ts.api.request('POST', '/api/v1/commission/nodes', { raw });

  test.each([
    ['a NUL in an extra_vars value', `{"nodes":["ACTIVE"],"extra_vars":{"foo":"a\\u0000b"}}`, 'extra_vars.foo'],
    ['a NUL in an extra_vars key', `{"nodes":["ACTIVE"],"extra_vars":{"a\\u0000b":"x"}}`, 'extra_vars.a\\u0000b'],
    ['a lone surrogate in an extra_vars value', `{"nodes":["ACTIVE"],"extra_vars":{"note":"\\ud800"}}`, 'extra_vars.note'],
    ['a lone low surrogate deep in a list', `{"nodes":["ACTIVE"],"extra_vars":{"list":["ok",{"deep":"x\\udc00"}]}}`, 'extra_vars.list.1.deep'],
    ['a lone surrogate in an extra_vars key', `{"nodes":["ACTIVE"],"extra_vars":{"\\ud800":"x"}}`, 'extra_vars.\\ud800'],
  ])('%s on a bulk request', async (_label, raw, field) => {
    const before = await snapshot();

    const res = await commission(raw.replace('ACTIVE', active.hostname));

    expectRefused(res, field);
    expect(await snapshot()).toEqual(before);
  });

  test('every offending field is named at once', async () => {
    const res = await commission(JSON.stringify({ nodes: [active.hostname], extra_vars: { a: '\u0000', b: ['\ud800'], ['c\u0000']: 1 } }));
    expectRefused(res);
    expect(fieldsOf(res).sort()).toEqual(['extra_vars.a', 'extra_vars.b.0', 'extra_vars.c\\u0000']);
  });

  test('extra_vars nested deeper than any request needs is refused, not handed to the database', async () => {
    const before = await snapshot();
    const nested = `${'{"a":'.repeat(100_000)}1${'}'.repeat(100_000)}`;

    const res = await commission(`{"nodes":["${active.hostname}"],"extra_vars":${nested}}`);

    expectRefused(res);
    expect(res.body.error.fields).toHaveLength(1);
    expect(res.body.error.fields[0]).toEqual({ field: `extra_vars${'.a'.repeat(99)}`, problem: 'is nested more than 100 levels deep' });
    expect(await snapshot()).toEqual(before);
  });

  test('a surrogate pair is text like any other', async () => {
    const res = await patch(`/api/v1/nodes/${enrolled[0]}`, { instance_info: { note: 'rack \ud83d\ude80' } });
    expect(res.status).toBe(200);
    expect(res.body.instance_info.note).toBe('rack \ud83d\ude80');
  });

  test.each([
    ['a NUL in a driver_info value', { driver_info: { ...driverInfo, ipmi_username: 'ad\u0000min' } }, 'driver_info.ipmi_username'],
    ['a lone surrogate in an instance_info value', { driver_info: driverInfo, instance_info: { image_source: 'http://x/\ud800' } }, 'instance_info.image_source'],
    ['a NUL in an instance_info key', { driver_info: driverInfo, instance_info: { ['k\u0000']: 'v' } }, 'instance_info.k\\u0000'],
  ])('%s on enroll creates nothing', async (_label, body, field) => {
    const name = ts.hostname(`bad-${field.replace(/[^a-z]/g, '')}`);
    const before = await snapshot();

    // JSON.stringify writes a lone surrogate as the escape \ud800, as a client would send it.
    const res = await ts.api.request('POST', '/api/v1/nodes', { raw: JSON.stringify({ name, driver: 'ipmi', ...body }) });

    expectRefused(res, field);
    expect(await nodeState(ts, name)).toBeUndefined();
    expect(await snapshot()).toEqual(before);
  });

  test.each([
    ['a NUL in a driver_info value', { driver_info: { ipmi_username: 'x\u0000' } }, 'driver_info.ipmi_username'],
    ['a lone surrogate in a driver_info value', { driver_info: { ipmi_password: '\udfff' } }, 'driver_info.ipmi_password'],
    ['a lone surrogate in an instance_info key', { instance_info: { ['\ud800']: 'v' } }, 'instance_info.\\ud800'],
  ])('%s on PATCH leaves the node as it was', async (_label, body, field) => {
    const before = await snapshot();

    const res = await ts.api.request('PATCH', `/api/v1/nodes/${enrolled[1]}`, { raw: JSON.stringify(body) });

    expectRefused(res, field);
    expect(await snapshot()).toEqual(before);
  });

  test('a body that is not UTF-8 is refused, not stored with replacement characters', async () => {
    const name = ts.hostname('bytes');
    const body = Buffer.concat([
      Buffer.from(JSON.stringify({ name, driver: 'ipmi', driver_info: driverInfo }).replace('"admin"', '"ad')),
      // A surrogate encoded as UTF-8 bytes (CESU-8): no valid UTF-8 decoder accepts it.
      Buffer.from([0xed, 0xa0, 0x80]),
      Buffer.from('min"}}'),
    ]);

    const res = await sendBytes('POST', '/api/v1/nodes', body);

    expectRefused(res, 'body');
    expect(await nodeState(ts, name)).toBeUndefined();
  });

  test.each([
    ['?nodes=%00', 'nodes'],
    ['?nodes=a,b%00', 'nodes'],
    // Percent-encoded UTF-8 of a surrogate: a lenient decoder would turn it into U+FFFD and filter on that.
    ['?nodes=%ED%A0%80', 'nodes'],
    ['?nodes=%zz', 'nodes'],
  ])('GET /api/v1/info/nodes%s is refused naming the parameter', async (query, field) => {
    expectRefused(await ts.api.get(`/api/v1/info/nodes${query}`), field);
  });

  test('a NUL in another query parameter is refused too', async () => {
    expectRefused(await ts.api.get('/api/v1/tasks?hostname=%00'), 'hostname');
  });

  test.each([
    ['GET', '/api/v1/nodes/%00'],
    ['PATCH', '/api/v1/nodes/%00'],
    ['DELETE', '/api/v1/nodes/a%00b'],
    ['GET', '/api/v1/tasks/%00'],
    ['GET', '/api/v1/nodes/%ED%A0%80'],
    ['GET', '/api/v1/nodes/%zz/states/power'],
  ])('%s %s is refused naming the path', async (method, path) => {
    const before = await snapshot();
    const res = await ts.api.request(method, path, method === 'PATCH' ? { json: { instance_info: { a: 1 } } } : {});
    expectRefused(res, 'path');
    expect(await snapshot()).toEqual(before);
  });
});

describe('query parameters: repeated ones merge or are refused, unknown ones are refused', () => {
  const names = (res: HttpResponse) => res.body.map((n: { hostname: string }) => n.hostname).sort();

  test('?nodes=a&nodes=b filters on both names', async () => {
    const res = await ts.api.get(`/api/v1/info/nodes?nodes=${enrolled[0]}&nodes=${enrolled[1]}`);
    expect(res.status).toBe(200);
    expect(names(res)).toEqual([enrolled[0], enrolled[1]].sort());
  });

  test('repeated and comma-separated names merge', async () => {
    const res = await ts.api.get(`/api/v1/info/nodes?nodes=${enrolled[0]},${enrolled[1]}&nodes=${active.hostname}`);
    expect(names(res)).toEqual([enrolled[0], enrolled[1], active.hostname].sort());
  });

  test.each([
    ['/api/v1/info/nodes?nodes[]=NODE', 'nodes[]'],
    ['/api/v1/info/nodes?node=NODE', 'node'],
    ['/api/v1/nodes?stat=active', 'stat'],
    ['/api/v1/events?limt=5', 'limt'],
    ['/api/v1/tasks?status=running&bogus=1', 'bogus'],
    ['/api/v1/tasks/00000000-0000-4000-8000-000000000000?limit=5', 'limit'],
    ['/api/v1/unmanaged_nodes?state=unmanaged', 'state'],
    ['/api/v1/nodes/NODE?verbose=1', 'verbose'],
  ])('%s (unknown parameter) is refused naming it', async (path, name) => {
    const res = await ts.api.get(path.replace('NODE', enrolled[0]!));
    expectRefused(res, 'query');
    expect(res.body.error.message).toContain(name);
  });

  test.each([
    ['/api/v1/nodes?state=active&state=failed', 'state'],
    ['/api/v1/events?limit=1&limit=2', 'limit'],
    ['/api/v1/events?node=a.test&node=b.test', 'node'],
    ['/api/v1/tasks?limit=5&limit=6', 'limit'],
    ['/api/v1/tasks?offset=0&offset=1', 'offset'],
    ['/api/v1/tasks/00000000-0000-4000-8000-000000000000?node_limit=1&node_limit=2', 'node_limit'],
  ])('%s (one value given twice) is refused naming it', async (path, field) => {
    const res = await ts.api.get(path);
    expectRefused(res, field);
    expect(res.body.error.fields).toContainEqual({ field, problem: 'is given more than once; give it once' });
  });

  test('one value given once still filters', async () => {
    const res = await ts.api.get('/api/v1/nodes?state=enroll');
    expect(names(res)).toEqual([...enrolled].sort());
  });
});

describe('PATCH', () => {
  test('an unknown driver_info key is refused even with a null value, and updated_at does not move', async () => {
    const name = enrolled[2]!;
    const before = (await ts.api.get(`/api/v1/nodes/${name}`)).body;

    const res = await patch(`/api/v1/nodes/${name}`, { driver_info: { bogus: null } });

    expectRefused(res, 'driver_info.bogus');
    expect((await ts.api.get(`/api/v1/nodes/${name}`)).body).toEqual(before);
  });

  test('an unknown key with a value and one with null are refused alike', async () => {
    const withValue = await patch(`/api/v1/nodes/${enrolled[2]}`, { driver_info: { bogus: 'x' } });
    const withNull = await patch(`/api/v1/nodes/${enrolled[2]}`, { driver_info: { bogus: null } });
    expect(withNull.status).toBe(withValue.status);
    expect(withNull.body).toEqual(withValue.body);
  });

  test('a required field cannot be removed; an optional one can', async () => {
    expectRefused(await patch(`/api/v1/nodes/${enrolled[2]}`, { driver_info: { ipmi_address: null } }), 'driver_info.ipmi_address');
    await patch(`/api/v1/nodes/${enrolled[2]}`, { driver_info: { ipmi_port: '6230' } });
    const res = await patch(`/api/v1/nodes/${enrolled[2]}`, { driver_info: { ipmi_port: null } });
    expect(res.status).toBe(200);
    expect(res.body.driver_info).not.toHaveProperty('ipmi_port');
  });

  test('instance_info is checked as on enroll; null removes a key', async () => {
    expectRefused(await patch(`/api/v1/nodes/${enrolled[2]}`, { instance_info: { boot_option: 'floppy' } }), 'instance_info.boot_option');
    expect((await patch(`/api/v1/nodes/${enrolled[2]}`, { instance_info: { boot_option: 'local' } })).body.instance_info.boot_option).toBe('local');
    expect((await patch(`/api/v1/nodes/${enrolled[2]}`, { instance_info: { boot_option: null } })).body.instance_info).not.toHaveProperty('boot_option');
  });
});

describe('agent ready does not tell which host names exist', () => {
  const key = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const ready = (hostname: string, sign: boolean) => {
    const raw = JSON.stringify({ hostname });
    const headers = sign ? signRequest(key.privateKey, 'POST', SERVER_PATHS.ready, raw) : {};
    return ts.anonymous.request('POST', SERVER_PATHS.ready, { raw, headers });
  };

  test.each([
    ['signed with a key the server does not hold', true],
    ['unsigned', false],
  ])('%s: a known and an unknown host get the same answer', async (_label, sign) => {
    const known = await ready(active.hostname, sign);
    const unknown = await ready(ts.hostname('nobody'), sign);
    const enrolledWithoutKey = await ready(enrolled[0]!, sign);

    expect(known.status).toBe(401);
    expect(known.body.error.code).toBe('unauthorized');
    expect({ status: unknown.status, body: unknown.body }).toEqual({ status: known.status, body: known.body });
    expect({ status: enrolledWithoutKey.status, body: enrolledWithoutKey.body }).toEqual({ status: known.status, body: known.body });
  });
});
