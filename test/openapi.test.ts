import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import Ajv2020, { type ValidateFunction } from 'ajv/dist/2020';
import { createApp, type AppDeps } from '../src/api/app';
import { fingerprintOf } from '../src/identity/fingerprint';
import { signRequest } from '../src/identity/request-signature';
import { SERVER_PATHS } from '../src/protocol';
import { startActiveFleet, waitForTask } from './support/fleet';
import type { HttpResponse } from './support/http-client';
import { acceptNode, agentsOf, nodeState, startTestService, type TestService } from './support/harness';
import { waitFor } from './support/wait-for';

let ts: TestService;
const agents = agentsOf(() => ts);
let doc: any;

beforeAll(async () => {
  ts = await startTestService();
  const served = await ts.anonymous.get('/api/v1/openapi.json');
  expect(served.status).toBe(200);
  expect(served.headers.get('content-type')).toMatch(/^application\/json/);
  doc = served.body;
});
afterAll(async () => {
  await agents.stopAll();
  await ts.stop();
});

// ---------------------------------------------------------------------------------------------------
// The document against the answers: every answer's status is documented, and its body fits the schema.

const COMPONENTS = 'urn:node-lifecycle:openapi-components';
let ajv: Ajv2020 | undefined;
const compiled = new Map<string, ValidateFunction>();

/** Component refs (#/components/schemas/X) pointed at one schema holding them all as $defs. */
function withComponentRefs<T>(schema: T): T {
  return JSON.parse(JSON.stringify(schema).replaceAll('"#/components/schemas/', `"${COMPONENTS}#/$defs/`));
}

function documentedResponse(method: string, path: string, status: number): { content?: Record<string, { schema?: unknown }> } {
  const operation = doc.paths[path]?.[method];
  if (!operation) throw new Error(`the document has no ${method.toUpperCase()} ${path}`);
  const response = operation.responses[String(status)];
  if (!response) {
    throw new Error(`${method.toUpperCase()} ${path} answered ${status}, which the document does not list (it lists ${Object.keys(operation.responses).join(', ')})`);
  }
  return response;
}

function validatorFor(key: string, schema: unknown): ValidateFunction {
  if (!ajv) {
    // JSON Schema 2020-12 is OpenAPI 3.1's dialect; `example` is OpenAPI's own keyword.
    ajv = new Ajv2020({ allErrors: true, strictTypes: false, strictTuples: false, validateFormats: false });
    ajv.addKeyword('example');
    ajv.addSchema({ $id: COMPONENTS, $defs: withComponentRefs(doc.components.schemas) });
  }
  if (!compiled.has(key)) compiled.set(key, ajv.compile(withComponentRefs(schema as object)));
  return compiled.get(key)!;
}

/** Fails with ajv's own words when a real answer does not match what the document says of it. */
function expectDocumented(res: HttpResponse, method: string, path: string): void {
  const content = documentedResponse(method, path, res.status).content ?? {};
  const media = Object.keys(content);
  const schema = content['application/json']?.schema;
  if (media.length === 0) {
    expect(res.body).toBeUndefined();
    return;
  }
  expect(media.some((type) => res.headers.get('content-type')?.startsWith(type))).toBe(true);
  if (schema === undefined) return;
  const validate = validatorFor(`${method} ${path} ${res.status}`, schema);
  if (!validate(res.body)) {
    throw new Error(
      `${method.toUpperCase()} ${path} ${res.status} does not match the document: ${ajv!.errorsText(validate.errors, { separator: '\n  ' })}\nbody: ${JSON.stringify(res.body).slice(0, 2000)}`,
    );
  }
}

// ---------------------------------------------------------------------------------------------------
// The document against the app's routes.

interface Layer {
  route?: { path: string | string[]; methods: Record<string, boolean> };
  handle?: { stack?: Layer[] };
  rawPath?: string;
}

/** Every method and path the app registers, mounted routers included, with `:param` written `{}`. */
function registeredRoutes(stack: Layer[], prefix = ''): string[] {
  return stack.flatMap((layer) => {
    if (layer.route) {
      const paths = [layer.route.path].flat().map((p) => `${prefix}${p}`);
      const methods = Object.keys(layer.route.methods).filter((m) => m !== '_all');
      return methods.flatMap((m) => paths.map((p) => `${m.toUpperCase()} ${p.replace(/:\w+/g, '{}')}`));
    }
    if (layer.handle?.stack) {
      const mount = layer.rawPath === undefined || layer.rawPath === '/' ? '' : layer.rawPath;
      return registeredRoutes(layer.handle.stack, prefix + mount);
    }
    return [];
  });
}

/** A value every property and call of which is another such value (and never a promise). */
function standIn(): any {
  return new Proxy(() => undefined, {
    get: (_target, key) => (key === 'then' ? undefined : key === Symbol.toPrimitive ? () => 'stand-in' : standIn()),
    apply: () => standIn(),
    construct: () => standIn(),
  });
}

function documentedRoutes(): string[] {
  return Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(([path, item]) =>
    Object.keys(item).map((method) => `${method.toUpperCase()} ${path.replace(/\{\w+\}/g, '{}')}`),
  );
}

describe('the document and the app', () => {
  test('every route under /api/v1 (and /healthz, /metrics) is in the document, and the document lists no other', () => {
    // The app as the service builds it. Its routes are registered at construction, before any request,
    // so its dependencies are never called here: stand-ins that answer anything keep the walk working
    // whatever dependencies the app takes.
    const deps = new Proxy({ apiToken: 'placeholder-token' } as Record<string | symbol, unknown>, {
      get: (target, key) => (key in target ? target[key] : standIn()),
    }) as unknown as AppDeps;
    const app = createApp(deps) as unknown as { router: { stack: Layer[] } };
    const served = new Set(registeredRoutes(app.router.stack).filter((r) => / \/api\/v1\/| \/healthz$| \/metrics$/.test(r)));
    const documented = new Set(documentedRoutes());

    expect(served.size).toBeGreaterThan(25);
    expect([...served].filter((r) => !documented.has(r)).sort()).toEqual([]);
    expect([...documented].filter((r) => !served.has(r)).sort()).toEqual([]);
  });

  test('operator endpoints need the bearer token; agent endpoints carry the signature headers instead', () => {
    expect(doc.openapi).toBe('3.1.0');
    expect(doc.components.securitySchemes.bearerToken).toMatchObject({ type: 'http', scheme: 'bearer' });
    expect(doc.components.securitySchemes.sessionCookie).toMatchObject({ type: 'apiKey', in: 'cookie' });
    expect(doc.security).toEqual([{ bearerToken: [] }, { sessionCookie: [] }]);
    for (const [path, method] of [
      ['/api/v1/unmanaged_nodes', 'post'],
      ['/api/v1/agent/ready', 'post'],
    ] as const) {
      const operation = doc.paths[path][method];
      expect(operation.security).toEqual([]);
      const headers = operation.parameters.filter((p: any) => p.in === 'header' && p.required).map((p: any) => p.name);
      expect(headers.sort()).toEqual(['x-node-signature', 'x-node-timestamp']);
    }
    expect(doc.paths['/api/v1/nodes'].get.security).toBeUndefined();
    expect(doc.paths['/api/v1/nodes'].get.responses['401']).toBeDefined();
  });

  test('request bodies come from the zod schemas the routes validate with', () => {
    const accept = doc.paths['/api/v1/unmanaged_nodes/{hostname}/accept'].post.requestBody.content['application/json'].schema;
    expect(accept).toEqual({ $ref: '#/components/schemas/AcceptRequest' });
    expect(doc.components.schemas.AcceptRequest).toMatchObject({ required: ['hostname', 'fingerprint'], additionalProperties: false });
    expect(doc.components.schemas.Hostname.pattern).toBeDefined();
  });
});

// ---------------------------------------------------------------------------------------------------
// Real answers of the main flows.

interface Keys {
  publicKey: KeyObject;
  privateKey: KeyObject;
}

/** A request as an agent signs it: no operator token. */
function signed(path: string, keys: Keys, body: unknown): Promise<HttpResponse> {
  const raw = JSON.stringify(body);
  return ts.anonymous.request('POST', path, { raw, headers: signRequest(keys.privateKey, 'POST', path, raw) });
}

describe('real answers match the document', () => {
  test('announce, ready, accept and a node on its way to active', async () => {
    const keys: Keys = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const host = ts.hostname('handmade');
    const announcement = {
      hostname: host,
      fingerprint: fingerprintOf(keys.publicKey),
      public_key: keys.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
      address: 'https://127.0.0.1:9',
    };
    const first = await signed(SERVER_PATHS.announce, keys, announcement);
    expect(first.status).toBe(201);
    expectDocumented(first, 'post', '/api/v1/unmanaged_nodes');
    const again = await signed(SERVER_PATHS.announce, keys, announcement);
    expect(again.status).toBe(200);
    expectDocumented(again, 'post', '/api/v1/unmanaged_nodes');

    const early = await signed('/api/v1/agent/ready', keys, { hostname: host });
    expect(early.status).toBe(409);
    expectDocumented(early, 'post', '/api/v1/agent/ready');

    const agent = await agents.start('real');
    const unmanaged = await ts.api.get('/api/v1/unmanaged_nodes');
    expect(unmanaged.body.map((n: { hostname: string }) => n.hostname)).toEqual(expect.arrayContaining([host, agent.hostname]));
    expectDocumented(unmanaged, 'get', '/api/v1/unmanaged_nodes');

    const accepted = await acceptNode(ts, agent.hostname, agent.fingerprint);
    expect(accepted.status).toBe(202);
    expectDocumented(accepted, 'post', '/api/v1/unmanaged_nodes/{hostname}/accept');
    // Once the accept is applied the node is initializing: its answer carries the workflow's live status.
    expectDocumented(
      await waitFor(() => ts.api.get(`/api/v1/nodes/${agent.hostname}`), (r) => r.body.state !== 'unmanaged', { what: `${agent.hostname} to be accepted` }),
      'get',
      '/api/v1/nodes/{hostname}',
    );
    await waitFor(() => nodeState(ts, agent.hostname), (s) => s === 'active', { what: `${agent.hostname} to be active` });
    const active = await ts.api.get(`/api/v1/nodes/${agent.hostname}`);
    expect(active.body.facts).not.toBeNull();
    expectDocumented(active, 'get', '/api/v1/nodes/{hostname}');

    // The hand-made host has no agent behind its address: ready is taken, then initialization fails.
    expectDocumented(await acceptNode(ts, host, announcement.fingerprint), 'post', '/api/v1/unmanaged_nodes/{hostname}/accept');
    // The accept is queued at its 202; ready is taken once the workflow has applied it.
    const initializing = await waitFor(() => ts.api.get(`/api/v1/nodes/${host}`), (r) => r.body.state !== 'unmanaged', { what: `${host} to be accepted` });
    if (initializing.body.state === 'initializing') expect(initializing.body.initialization).toMatchObject({ hostname: host, phase: expect.any(String) });
    expectDocumented(initializing, 'get', '/api/v1/nodes/{hostname}');
    const ready = await signed('/api/v1/agent/ready', keys, { hostname: host });
    expect(ready.status).toBe(202);
    expectDocumented(ready, 'post', '/api/v1/agent/ready');
    await waitFor(() => nodeState(ts, host), (s) => s === 'failed', { what: `${host} to fail its initialization`, timeoutMs: 120_000 });
    const failed = await ts.api.get(`/api/v1/nodes/${host}`);
    expect(failed.body.last_error).toEqual(expect.any(String));
    expectDocumented(failed, 'get', '/api/v1/nodes/{hostname}');
    const retried = await ts.api.post(`/api/v1/nodes/${host}/actions`, { action: 'reinitialize' });
    expect(retried.status).toBe(202);
    expectDocumented(retried, 'post', '/api/v1/nodes/{hostname}/actions');
  });

  test('a bulk commission, its task, the node lists and the events', async () => {
    const fleet = await startActiveFleet(ts, 2, 'bulk');
    try {
      const submitted = await ts.api.post('/api/v1/commission/nodes', { nodes: fleet.hostnames, extra_vars: { role: 'storage' } });
      expect(submitted.status).toBe(202);
      expectDocumented(submitted, 'post', '/api/v1/commission/nodes');

      const done = await waitForTask(ts, submitted.body.task_id);
      expect(done.body.status).toBe('succeeded');
      expect(done.body.nodes).toHaveLength(2);
      expectDocumented(done, 'get', '/api/v1/tasks/{id}');
      expectDocumented(await ts.api.get('/api/v1/tasks?limit=5'), 'get', '/api/v1/tasks');

      const nodes = await ts.api.get('/api/v1/nodes');
      expect(nodes.body.length).toBeGreaterThanOrEqual(2);
      expectDocumented(nodes, 'get', '/api/v1/nodes');
      const info = await ts.api.get(`/api/v1/info/nodes?nodes=${fleet.hostnames.join(',')},ghost`);
      expect(info.body).toHaveLength(2);
      expectDocumented(info, 'get', '/api/v1/info/nodes');
      expectDocumented(await ts.api.get('/api/v1/events?limit=20'), 'get', '/api/v1/events');
    } finally {
      await fleet.stop();
    }
  });

  test('enrolling a node by its driver, reading its power, changing and deleting it', async () => {
    const name = ts.hostname('enrolled');
    const agentKey = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey;
    const enrolled = await ts.api.post('/api/v1/nodes', { name, driver: 'agent', driver_info: { agent_fingerprint: fingerprintOf(agentKey) } });
    expect(enrolled.status).toBe(201);
    expectDocumented(enrolled, 'post', '/api/v1/nodes');
    expectDocumented(await ts.api.get(`/api/v1/nodes/${name}`), 'get', '/api/v1/nodes/{hostname}');
    expectDocumented(await ts.api.get(`/api/v1/nodes/${name}/states/power`), 'get', '/api/v1/nodes/{hostname}/states/power');

    const changed = await ts.api.request('PATCH', `/api/v1/nodes/${name}`, { json: { instance_info: { boot_option: 'local' } } });
    expect(changed.status).toBe(200);
    expectDocumented(changed, 'patch', '/api/v1/nodes/{hostname}');
    const deleted = await ts.api.request('DELETE', `/api/v1/nodes/${name}`);
    expect(deleted.status).toBe(204);
    expectDocumented(deleted, 'delete', '/api/v1/nodes/{hostname}');
  });

  test('roles, a deployment, its noderoles and an anneal task, with their refusals', async () => {
    const documented = async (res: Promise<HttpResponse>, status: number, method: string, path: string) => {
      const answer = await res;
      if (answer.status !== status) throw new Error(`${method.toUpperCase()} ${path}: expected ${status}, got ${answer.status} ${JSON.stringify(answer.body)}`);
      expectDocumented(answer, method, path);
      return answer.body;
    };
    const script = '#!/bin/sh\nexit 0\n';
    // A node enrolled by its driver stays in enroll: a script role on it is refused by the annealer, which
    // gives an anneal task that fails (an error and what it blocks) without any agent.
    const node = ts.hostname('noderoles');
    const agentKey = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey;
    await documented(ts.api.post('/api/v1/nodes', { name: node, driver: 'agent', driver_info: { agent_fingerprint: fingerprintOf(agentKey) } }), 201, 'post', '/api/v1/nodes');

    // Roles.
    await documented(ts.api.post('/api/v1/roles', { name: 'doc-base', script }), 201, 'post', '/api/v1/roles');
    const app = await documented(ts.api.post('/api/v1/roles', { name: 'doc-app', script, requires: ['doc-base'], attributes: { port: 80 } }), 201, 'post', '/api/v1/roles');
    expect(app).toMatchObject({ kind: 'script', requires: ['doc-base'], builtin: false, revision: 1 });
    const exists = await documented(ts.api.post('/api/v1/roles', { name: 'doc-app', script }), 409, 'post', '/api/v1/roles');
    expect(exists.error.code).toBe('conflict');
    const cycle = await documented(ts.api.request('PUT', '/api/v1/roles/doc-base', { json: { script, requires: ['doc-app'] } }), 400, 'put', '/api/v1/roles/{name}');
    expect(cycle.error.fields).toEqual([expect.objectContaining({ problem: expect.stringContaining('doc-app -> doc-base -> doc-app') })]);
    await documented(ts.api.request('PUT', '/api/v1/roles/doc-app', { json: { script, requires: ['doc-base'], attributes: { port: 8080 } } }), 200, 'put', '/api/v1/roles/{name}');
    await documented(ts.api.get('/api/v1/roles/commission'), 200, 'get', '/api/v1/roles/{name}');
    await documented(ts.api.get('/api/v1/roles?limit=2'), 200, 'get', '/api/v1/roles');
    await documented(ts.api.request('DELETE', '/api/v1/roles/commission'), 409, 'delete', '/api/v1/roles/{name}');

    // A deployment, a role's attributes in it, and a bind (with the role it requires).
    const created = await documented(ts.api.post('/api/v1/deployments', { name: 'doc-deployment', description: 'documented' }), 201, 'post', '/api/v1/deployments');
    expect(created).toMatchObject({ parent: 'system', state: 'proposed', nodes: 0 });
    const invalid = await documented(ts.api.post('/api/v1/deployments', { name: 'Not A Name' }), 400, 'post', '/api/v1/deployments');
    expect(invalid.error.fields).toEqual([expect.objectContaining({ field: 'name' })]);
    await documented(ts.api.post('/api/v1/deployments', { name: 'doc-orphan', parent: 'ghost' }), 404, 'post', '/api/v1/deployments');
    await documented(ts.api.post('/api/v1/deployments', { name: 'doc-deployment' }), 409, 'post', '/api/v1/deployments');
    await documented(ts.api.get('/api/v1/deployments?parent=system'), 200, 'get', '/api/v1/deployments');
    await documented(ts.api.request('PUT', '/api/v1/deployments/doc-deployment/roles/doc-app', { json: { attributes: { port: 8443 } } }), 200, 'put', '/api/v1/deployments/{name}/roles/{role}');
    const bound = await documented(ts.api.post('/api/v1/deployments/doc-deployment/bind', { role: 'doc-app', nodes: [node] }), 200, 'post', '/api/v1/deployments/{name}/bind');
    expect(bound.noderoles.map((n: { role: string }) => n.role).sort()).toEqual(['doc-app', 'doc-base']);
    const [base, dependent] = ['doc-base', 'doc-app'].map((role) => bound.noderoles.find((n: { role: string }) => n.role === role));
    expect(dependent.effective_attributes).toEqual({ port: 8443 });
    const ghost = await documented(ts.api.post('/api/v1/deployments/doc-deployment/bind', { role: 'doc-app', nodes: [ts.hostname('ghost')] }), 404, 'post', '/api/v1/deployments/{name}/bind');
    expect(ghost.error.offenders).toEqual([expect.objectContaining({ problem: 'unknown node' })]);
    const required = await documented(ts.api.post('/api/v1/deployments/doc-deployment/unbind', { role: 'doc-base', nodes: [node] }), 409, 'post', '/api/v1/deployments/{name}/unbind');
    expect(required.error.offenders).toEqual([expect.objectContaining({ node })]);
    await documented(ts.api.post('/api/v1/deployments/doc-deployment/nodes', { nodes: [node] }), 200, 'post', '/api/v1/deployments/{name}/nodes');
    const shown = await documented(ts.api.get('/api/v1/deployments/doc-deployment'), 200, 'get', '/api/v1/deployments/{name}');
    expect(shown).toMatchObject({ path: ['system', 'doc-deployment'], tree: { name: 'doc-deployment', nodes: 1, children: [] }, noderoles_truncated: false });
    const system = await documented(ts.api.get('/api/v1/deployments/system'), 200, 'get', '/api/v1/deployments/{name}');
    expect(system.tree.children).toEqual(expect.arrayContaining([expect.objectContaining({ name: 'doc-deployment', children: [] })]));
    await documented(ts.api.get('/api/v1/deployments/doc-orphan'), 404, 'get', '/api/v1/deployments/{name}');

    // Noderoles.
    await documented(ts.api.get(`/api/v1/noderoles?deployment=doc-deployment&node=${node}`), 200, 'get', '/api/v1/noderoles');
    await documented(ts.api.request('PATCH', `/api/v1/noderoles/${dependent.id}`, { json: { attributes: { tls: true } } }), 200, 'patch', '/api/v1/noderoles/{id}');
    await documented(ts.api.get('/api/v1/noderoles/0'), 400, 'get', '/api/v1/noderoles/{id}');
    await documented(ts.api.get('/api/v1/noderoles/999999999'), 404, 'get', '/api/v1/noderoles/{id}');

    // Commit: the anneal task fails (base refused on a node in enroll, app blocked by it); a retry runs base again.
    const committed = await documented(ts.api.post('/api/v1/deployments/doc-deployment/commit'), 202, 'post', '/api/v1/deployments/{name}/commit');
    expect(committed).toEqual({ task_id: expect.any(String), deployment: 'doc-deployment', noderoles: 2 });
    await documented(ts.api.post('/api/v1/deployments/doc-deployment/commit'), 409, 'post', '/api/v1/deployments/{name}/commit');
    await documented(ts.api.request('PATCH', `/api/v1/noderoles/${dependent.id}`, { json: { attributes: {} } }), 409, 'patch', '/api/v1/noderoles/{id}');
    const annealed = await waitForTask(ts, committed.task_id);
    expect(annealed.body).toMatchObject({ kind: 'anneal', status: 'failed', progress: { total: 2, error: 1, blocked: 1 } });
    expect(annealed.body.noderoles).toEqual([
      expect.objectContaining({ id: base.id, state: 'error', error: expect.any(String) }),
      expect.objectContaining({ id: dependent.id, state: 'blocked' }),
    ]);
    expectDocumented(annealed, 'get', '/api/v1/tasks/{id}');
    const notInError = await documented(ts.api.post(`/api/v1/noderoles/${dependent.id}/retry`), 409, 'post', '/api/v1/noderoles/{id}/retry');
    expect(notInError.error.code).toBe('invalid_state');
    const retried = await documented(ts.api.post(`/api/v1/noderoles/${base.id}/retry`), 202, 'post', '/api/v1/noderoles/{id}/retry');
    expect(retried).toEqual({ task_id: expect.any(String), deployment: 'doc-deployment', noderoles: 2 });
    expectDocumented(await waitForTask(ts, retried.task_id), 'get', '/api/v1/tasks/{id}');

    // Back to proposed, emptied, and deleted.
    await documented(ts.api.post('/api/v1/deployments/system/propose'), 409, 'post', '/api/v1/deployments/{name}/propose');
    await documented(ts.api.post('/api/v1/deployments/doc-deployment/propose'), 200, 'post', '/api/v1/deployments/{name}/propose');
    await documented(ts.api.request('DELETE', '/api/v1/deployments/doc-deployment'), 409, 'delete', '/api/v1/deployments/{name}');
    const removed = await documented(ts.api.post('/api/v1/deployments/doc-deployment/unbind', { role: 'doc-app', nodes: [node] }), 200, 'post', '/api/v1/deployments/{name}/unbind');
    expect(removed).toEqual({ removed: 1 });
    await documented(ts.api.post('/api/v1/deployments/doc-deployment/unbind', { role: 'doc-base', nodes: [node] }), 200, 'post', '/api/v1/deployments/{name}/unbind');
    const moved = await documented(ts.api.post('/api/v1/deployments/system/nodes', { nodes: [node] }), 200, 'post', '/api/v1/deployments/{name}/nodes');
    expect(moved).toEqual({ moved: [node] });
    await documented(ts.api.request('DELETE', '/api/v1/deployments/doc-deployment'), 204, 'delete', '/api/v1/deployments/{name}');
    await documented(ts.api.request('DELETE', '/api/v1/roles/doc-app'), 204, 'delete', '/api/v1/roles/{name}');
  });

  test('images, the SSH key and known hosts, and health', async () => {
    const images = await ts.api.get('/api/v1/images');
    expect(images.status).toBe(200);
    expectDocumented(images, 'get', '/api/v1/images');
    const key = await ts.api.get('/api/v1/ssh/public_key');
    expect(key.body.public_key).toMatch(/^ssh-/);
    expectDocumented(key, 'get', '/api/v1/ssh/public_key');
    expectDocumented(await ts.api.get('/api/v1/ssh/known_hosts'), 'get', '/api/v1/ssh/known_hosts');
    const metrics = await ts.api.get('/metrics');
    expect(metrics.status).toBe(200);
    expectDocumented(metrics, 'get', '/metrics');
    const health = await ts.anonymous.get('/healthz');
    expect(health.status).toBe(200);
    expectDocumented(health, 'get', '/healthz');
  });

  test("the dashboard's session and views", async () => {
    const login = await ts.anonymous.post('/api/v1/session', { token: ts.service.apiToken });
    expect(login.status).toBe(201);
    expectDocumented(login, 'post', '/api/v1/session');
    expectDocumented(await ts.api.get('/api/v1/session'), 'get', '/api/v1/session');
    const summary = await ts.api.get('/api/v1/dashboard/summary');
    expect(summary.body.total).toBeGreaterThan(0);
    expectDocumented(summary, 'get', '/api/v1/dashboard/summary');
    const page = await ts.api.get('/api/v1/dashboard/nodes?limit=5&reachable=true');
    expect(page.body.nodes.length).toBeGreaterThan(0);
    expectDocumented(page, 'get', '/api/v1/dashboard/nodes');
    expectDocumented(await ts.api.get('/api/v1/dashboard/settings'), 'get', '/api/v1/dashboard/settings');
    expectDocumented(await ts.anonymous.post('/api/v1/session', { token: 'wrong' }), 'post', '/api/v1/session');
  });

  test('error bodies: 400, 401, 404 and a bulk refusal naming its offenders', async () => {
    const invalid = await ts.api.post(`/api/v1/nodes/${ts.hostname('any')}/actions`, { action: 'explode' });
    expect(invalid.status).toBe(400);
    expect(invalid.body.error.fields).toEqual([{ field: 'action', problem: 'must be one of: reinitialize' }]);
    expectDocumented(invalid, 'post', '/api/v1/nodes/{hostname}/actions');

    const discover = await ts.api.post('/api/v1/discover/nodes', { addresses: ['', 'host:99999'] });
    expect(discover.status).toBe(400);
    expect(discover.body.error.code).toBe('validation_failed');
    expectDocumented(discover, 'post', '/api/v1/discover/nodes');

    const anonymous = await ts.anonymous.get('/api/v1/nodes');
    expect(anonymous.status).toBe(401);
    expectDocumented(anonymous, 'get', '/api/v1/nodes');

    const missing = await ts.api.get(`/api/v1/nodes/${ts.hostname('ghost')}`);
    expect(missing.status).toBe(404);
    expectDocumented(missing, 'get', '/api/v1/nodes/{hostname}');
    const noImage = await ts.api.get('/api/v1/images/ghost');
    expect(noImage.status).toBe(404);
    expectDocumented(noImage, 'get', '/api/v1/images/{name}');

    const refused = await ts.api.post('/api/v1/commission/nodes', { nodes: [ts.hostname('ghost')] });
    expect(refused.status).toBe(404);
    expect(refused.body.error.offenders).toEqual([expect.objectContaining({ node: ts.hostname('ghost'), problem: 'unknown node' })]);
    expectDocumented(refused, 'post', '/api/v1/commission/nodes');
  });

  test('an answer that does not match fails with ajv\'s error text', async () => {
    const key = await ts.api.get('/api/v1/ssh/public_key');
    const drifted = { ...key, body: { ...key.body, public_key: 42, extra: true } };
    const failure = (() => {
      try {
        expectDocumented(drifted, 'get', '/api/v1/ssh/public_key');
      } catch (err) {
        return (err as Error).message;
      }
      return 'no failure';
    })();
    expect(failure).toContain('data/public_key must be string');
    expect(failure).toContain('must NOT have additional properties');
    expect(() => expectDocumented({ ...key, status: 418 }, 'get', '/api/v1/ssh/public_key')).toThrow(/answered 418, which the document does not list/);
  });
});

// ---------------------------------------------------------------------------------------------------
// The rendered reference.

const SWAGGER_UI_DIR = path.dirname(require.resolve('swagger-ui-dist/package.json'));

describe('the reference page', () => {
  test('is served without a token, points at the document, and loads its assets from the service', async () => {
    const bare = await fetch(new URL('/api/docs', ts.service.apiUrl), { redirect: 'manual' });
    expect(bare.status).toBe(301);
    expect(bare.headers.get('location')).toBe('/api/docs/');

    const page = await ts.anonymous.get('/api/docs/');
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    const html = page.body as string;
    expect(html).toContain('/api/v1/openapi.json');
    // No CDN: every asset is a path on this service.
    expect(html).not.toMatch(/(src|href)="(https?:)?\/\//);

    const assets = [...html.matchAll(/(?:src|href)="\.\/([^"]+)"/g)].map((m) => m[1]!);
    expect(assets).toEqual(expect.arrayContaining(['swagger-ui.css', 'swagger-ui-bundle.js', 'swagger-initializer.js']));
    for (const asset of assets) {
      const res = await fetch(new URL(`/api/docs/${asset}`, ts.service.apiUrl));
      expect({ asset, status: res.status }).toEqual({ asset, status: 200 });
      const body = Buffer.from(await res.arrayBuffer());
      if (asset === 'swagger-initializer.js') {
        // Ours, pointing at the document; the package's own points at the Petstore.
        expect(body.toString()).toContain('openapiUrl');
        expect(body.toString()).not.toMatch(/petstore/i);
      } else {
        expect(body.equals(fs.readFileSync(path.join(SWAGGER_UI_DIR, asset)))).toBe(true);
      }
    }
  });

  test('the document needs no token, and an unknown asset is a JSON 404', async () => {
    const res = await ts.anonymous.get('/api/v1/openapi.json');
    expect(res.status).toBe(200);
    expectDocumented(res, 'get', '/api/v1/openapi.json');
    const missing = await ts.anonymous.get('/api/docs/nothing-here.js');
    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe('not_found');
  });
});
