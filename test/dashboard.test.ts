import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import knex from 'knex';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { DASHBOARD_BUILD, ensureDashboard } from '../src/dashboard/build';
import { ChangeFeed, type Change } from '../src/dashboard/change-feed';
import { agentsOf, startTestService, type TestAgent, type TestService } from './support/harness';
import { waitFor } from './support/wait-for';

/**
 * The web dashboard in Debian's headless Chromium (playwright-core drives /usr/bin/chromium), against the
 * real service and real sandbox agents; and its session and stream at the HTTP level.
 */

const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
/** The suite shares two cores with other work: a page waits for what it shows, generously. */
const PAGE_TIMEOUT_MS = 120_000;
/** UPDATE_SCREENSHOTS=1 writes the README's picture of the node page; other runs keep theirs in a temp dir. */
const SCREENSHOT = process.env.UPDATE_SCREENSHOTS ? path.resolve(__dirname, '..', 'docs', 'dashboard-node.png') : path.join(os.tmpdir(), `dashboard-node-${process.pid}.png`);

// A browser step waits up to PAGE_TIMEOUT_MS for what it expects; the test around it a little longer.
jest.setTimeout(PAGE_TIMEOUT_MS + 60_000);

let ts: TestService;
let browser: Browser;
const agents = agentsOf(() => ts);

beforeAll(async () => {
  ts = await startTestService();
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
}, 180_000);
afterAll(async () => {
  await browser?.close();
  await agents.stopAll();
  await ts?.stop();
});

const url = (p: string) => new URL(p, ts.service.apiUrl).toString();

/** A raw request with the given cookie and headers; the body parsed when it is JSON. */
async function call(method: string, p: string, options: { cookie?: string; headers?: Record<string, string>; json?: unknown } = {}) {
  const headers: Record<string, string> = { ...options.headers };
  if (options.cookie) headers.cookie = options.cookie;
  if (options.json !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(url(p), { method, headers, body: options.json === undefined ? undefined : JSON.stringify(options.json) });
  const text = await res.text();
  let body: any = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: left as text
  }
  return { status: res.status, body, headers: res.headers };
}

async function logIn(): Promise<{ cookie: string; setCookie: string }> {
  const res = await call('POST', '/api/v1/session', { json: { token: ts.service.apiToken } });
  expect(res.status).toBe(201);
  const setCookie = res.headers.get('set-cookie') ?? '';
  return { cookie: setCookie.split(';')[0]!, setCookie };
}

describe('log-in session', () => {
  test('a wrong token gets 401 JSON and no cookie', async () => {
    const res = await call('POST', '/api/v1/session', { json: { token: `${ts.service.apiToken}x` } });
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe('unauthorized');
    expect(res.headers.get('set-cookie')).toBeNull();
  });

  test('a body without a token gets 400 naming it', async () => {
    const res = await call('POST', '/api/v1/session', { json: { password: 'x' } });
    expect(res.status).toBe(400);
    expect(res.body.error.fields.map((f: { field: string }) => f.field)).toEqual(expect.arrayContaining(['token']));
  });

  test('the cookie is httpOnly, SameSite=Strict, Path=/, and holds a session id, not the token', async () => {
    const { cookie, setCookie } = await logIn();
    expect(setCookie).toMatch(/; HttpOnly/);
    expect(setCookie).toMatch(/; SameSite=Strict/);
    expect(setCookie).toMatch(/; Path=\//);
    expect(cookie).toMatch(/^nl_session=[A-Za-z0-9_-]{43}$/);
    expect(setCookie).not.toContain(ts.service.apiToken);
  });

  test('the cookie is accepted by the REST API beside the bearer header', async () => {
    const { cookie } = await logIn();
    const res = await call('GET', '/api/v1/nodes', { cookie });
    expect(res.status).toBe(200);
    expect(Array.isArray(res.body)).toBe(true);
    expect((await call('GET', '/api/v1/session', { cookie })).body).toEqual({ authenticated: true, via: 'session' });
  });

  test('a state-changing request on the cookie alone is refused as possible CSRF; with the header it goes through', async () => {
    const { cookie } = await logIn();
    const bare = await call('POST', '/api/v1/commission/nodes', { cookie, json: { nodes: [] } });
    expect(bare.status).toBe(403);
    expect(bare.body.error.code).toBe('csrf_refused');
    const foreign = await call('POST', '/api/v1/commission/nodes', { cookie, json: { nodes: [] }, headers: { 'x-requested-with': 'dashboard', origin: 'http://evil.example' } });
    expect(foreign.status).toBe(403);
    // Past the check, the request meets the route's own validation.
    const sent = await call('POST', '/api/v1/commission/nodes', { cookie, json: { nodes: [] }, headers: { 'x-requested-with': 'dashboard', origin: new URL(ts.service.apiUrl!).origin } });
    expect(sent.status).toBe(400);
    expect(sent.body.error.code).toBe('validation_failed');
  });

  test('log-out ends the session: the same cookie is refused after it', async () => {
    const { cookie } = await logIn();
    const out = await call('DELETE', '/api/v1/session', { cookie, headers: { 'x-requested-with': 'dashboard' } });
    expect(out.status).toBe(204);
    expect(out.headers.get('set-cookie')).toMatch(/^nl_session=; .*Max-Age=0/);
    const after = await call('GET', '/api/v1/nodes', { cookie });
    expect(after.status).toBe(401);
    expect(after.body.error.code).toBe('unauthorized');
  });

  test('a made-up session id is refused', async () => {
    const res = await call('GET', '/api/v1/nodes', { cookie: 'nl_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' });
    expect(res.status).toBe(401);
  });

  test('the dashboard endpoints need the token or a session', async () => {
    for (const p of ['/api/v1/dashboard/nodes', '/api/v1/dashboard/summary', '/api/v1/dashboard/stream', '/api/v1/session']) {
      expect((await call('GET', p)).status).toBe(401);
    }
  });
});

describe('dashboard endpoints', () => {
  test('the page and its assets are served by the service itself, with a content security policy', async () => {
    const page = await call('GET', '/dashboard/');
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toContain("default-src 'self'");
    const assets = [...String(page.body).matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!).filter((a) => !a.startsWith('data:'));
    expect(assets.length).toBeGreaterThanOrEqual(2);
    for (const asset of assets) {
      expect(asset).toMatch(/^\/dashboard\/assets\//);
      const res = await fetch(url(asset));
      expect(res.status).toBe(200);
      expect(res.headers.get('cache-control')).toContain('immutable');
    }
    expect((await fetch(url('/dashboard'), { redirect: 'manual' })).headers.get('location')).toBe('/dashboard/');
  });

  test('the node list refuses bad filters with 400 naming them', async () => {
    const res = await ts.api.get('/api/v1/dashboard/nodes?state=bogus&reachable=maybe&limit=0&colour=red');
    expect(res.status).toBe(400);
    expect(res.body.error.fields.map((f: { field: string }) => f.field).sort()).toEqual(['limit', 'query', 'reachable', 'state']);
  });
});

describe('the build', () => {
  test('a stale build is rebuilt into a new directory and swapped in whole while a reader keeps reading', async () => {
    const before = await ensureDashboard();
    // A source newer than the build: what an edit does.
    const now = new Date();
    fs.utimesSync(path.join(__dirname, '..', 'dashboard', 'index.html'), now, now);
    let reading = true;
    let reads = 0;
    const reader = (async () => {
      while (reading) {
        // Through the symlink, as the server does: the page and every asset it names, from one build.
        const dir = fs.realpathSync(DASHBOARD_BUILD);
        const html = fs.readFileSync(path.join(dir, 'index.html'), 'utf8');
        const assets = [...html.matchAll(/\/dashboard\/(assets\/[^"]+)"/g)].map((m) => m[1]!);
        expect(assets.length).toBeGreaterThanOrEqual(2);
        for (const asset of assets) expect(fs.statSync(path.join(dir, asset)).size).toBeGreaterThan(0);
        reads += 1;
        await new Promise((r) => setImmediate(r));
      }
    })();
    const after = await ensureDashboard().finally(() => (reading = false));
    await reader;
    expect(after).not.toBe(before);
    expect(fs.realpathSync(DASHBOARD_BUILD)).toBe(after);
    expect(reads).toBeGreaterThan(0);
    // Fresh now: the next check builds nothing.
    expect(await ensureDashboard()).toBe(after);
  });
});

describe('the node list: server-side filters and paging', () => {
  const names = () => [0, 1, 2, 3, 4].map((i) => ts.hostname(`flt-${i}`));
  const list = async (params: string) => {
    const res = await ts.api.get(`/api/v1/dashboard/nodes?${params}`);
    expect(res.status).toBe(200);
    return { total: res.body.total as number, hostnames: (res.body.nodes as { hostname: string }[]).map((n) => n.hostname) };
  };

  beforeAll(async () => {
    for (const name of names()) {
      const fingerprint = `SHA256:${Buffer.from(name.padEnd(32, '.')).toString('base64').slice(0, 43)}`;
      const res = await ts.api.post('/api/v1/nodes', { name, driver: 'agent', driver_info: { agent_fingerprint: fingerprint } });
      expect(res.status).toBe(201);
    }
    // Arranged in the database: what the monitor and the power sync would record after minutes of silence and BMC errors.
    const db = knex({ client: 'pg', connection: ts.config.databaseUrl });
    try {
      await db('nodes').where({ hostname: names()[1] }).update({ reachable: false });
      await db('nodes').where({ hostname: names()[2] }).update({ power_fault: true });
    } finally {
      await db.destroy();
    }
  });

  test('a text search matches part of the host name, case-insensitively, with % and _ taken literally', async () => {
    expect(await list('q=FLT-')).toEqual({ total: 5, hostnames: names() });
    expect(await list(`q=${encodeURIComponent(names()[3]!.toUpperCase())}`)).toEqual({ total: 1, hostnames: [names()[3]] });
    expect((await list('q=flt_')).total).toBe(0);
    expect((await list('q=flt%25')).total).toBe(0);
  });

  test('pages come in host name order with the total the filter matches', async () => {
    expect(await list('q=flt-&limit=2&offset=2')).toEqual({ total: 5, hostnames: names().slice(2, 4) });
    expect(await list('q=flt-&limit=2&offset=4')).toEqual({ total: 5, hostnames: names().slice(4) });
  });

  test('state, reachability and power fault filter, alone and together', async () => {
    expect((await list('q=flt-&state=enroll')).total).toBe(5);
    expect((await list('q=flt-&state=active')).total).toBe(0);
    expect(await list('q=flt-&reachable=false')).toEqual({ total: 1, hostnames: [names()[1]] });
    // A node the monitor has not judged yet counts as reachable, as the API shows it.
    expect((await list('q=flt-&reachable=true')).total).toBe(4);
    expect(await list('q=flt-&power_fault=true')).toEqual({ total: 1, hostnames: [names()[2]] });
    expect(await list('q=flt-&power_fault=true&reachable=false')).toEqual({ total: 0, hostnames: [] });
  });
});

describe('the change feed', () => {
  test('one poll serves every subscriber the same change, and polling stops with the last one', async () => {
    // A connection of the test's own to the service's database, so that its queries can be counted.
    const db = knex({ client: 'pg', connection: ts.config.databaseUrl });
    let queries = 0;
    db.on('query', () => queries++);
    try {
      const feed = new ChangeFeed(db, 50);
      const received: Change[][] = [[], []];
      const unsubscribe = received.map((list) => feed.subscribe({ send: (event, data) => event === 'change' && list.push(data as Change), valid: () => true, end: () => undefined }));
      const agent = await agents.start('feed');
      const announced = (c: Change) => c.nodes.some((n) => n.hostname === agent.hostname && n.state === 'unmanaged');
      const seen = (list: Change[]) => list.some(announced);
      await waitFor(async () => received.map(seen), (s) => s.every(Boolean), { what: 'both subscribers to hear of the announced node' });
      // The same message objects: one poll, fanned out.
      expect(received[0]!.find(announced)).toBe(received[1]!.find(announced));
      unsubscribe.forEach((u) => u());
      expect(feed.size).toBe(0);
      // A poll already running when the last one left may finish its queries; then nothing more runs.
      await waitFor(async () => feed.active, (active) => !active, { what: 'the running poll to end' });
      const after = queries;
      // Ten poll intervals of silence: absence can only be shown by waiting.
      await new Promise((r) => setTimeout(r, 500));
      expect(queries).toBe(after);
      expect(feed.active).toBe(false);
    } finally {
      await db.destroy();
    }
  });
});

describe('an operator in the browser (one journey, step by step)', () => {
  let context: BrowserContext;
  let page: Page;
  let a: TestAgent;
  let b: TestAgent;
  let c: TestAgent;
  const requested: string[] = [];
  const suffix = () => ts.hostname('x').replace(/^x-/, '');

  beforeAll(async () => {
    context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
    page = await context.newPage();
    page.setDefaultTimeout(PAGE_TIMEOUT_MS);
    page.on('request', (r) => requested.push(r.url()));
  });
  afterAll(async () => {
    await context?.close();
  });

  const rowOf = (hostname: string) => page.locator(`tr[data-hostname="${hostname}"]`);
  const dialog = () => page.getByRole('dialog');
  /** Types into the node list's search box and waits until the list is filtered by it. */
  const search = async (text: string) => {
    await page.getByRole('searchbox').fill(text);
    await page.waitForURL((u) => new URLSearchParams(u.hash.split('?')[1]).get('q') === text);
  };
  const nav = (name: string) => page.locator('header nav').getByRole('link', { name, exact: true });

  test('1: logs in with the token; a wrong one is refused; the token is nowhere in the page', async () => {
    await page.goto(url('/dashboard/'));
    await page.getByLabel('Operator token').fill('not-the-token');
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('alert').filter({ hasText: 'wrong token' }).waitFor();

    await page.getByLabel('Operator token').fill(ts.service.apiToken);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.locator('[data-testid="live"]', { hasText: 'live' }).waitFor();
    // Marks this document: a reload would lose it (checked after the live steps).
    await page.evaluate(() => ((globalThis as { sameDocument?: boolean }).sameDocument = true));

    const exposed = await page.evaluate(() => {
      // The page's globals (the test's own types know no DOM).
      const w = globalThis as any;
      return {
        url: w.location.href,
        local: JSON.stringify({ ...w.localStorage }),
        session: JSON.stringify({ ...w.sessionStorage }),
        cookie: w.document.cookie,
        html: w.document.documentElement.outerHTML,
      };
    });
    for (const place of Object.values(exposed)) expect(place).not.toContain(ts.service.apiToken);
    expect(requested.join('\n')).not.toContain(ts.service.apiToken);
    const [cookie] = await context.cookies();
    expect(cookie).toMatchObject({ name: 'nl_session', httpOnly: true, sameSite: 'Strict', path: '/' });
    expect(cookie!.value).not.toContain(ts.service.apiToken);
  });

  test('2: an announced sandbox agent appears under Unmanaged while the page is open', async () => {
    await nav('Unmanaged').click();
    await page.getByRole('heading', { name: 'Unmanaged' }).waitFor();
    a = await agents.start('dash-a');
    await rowOf(a.hostname).waitFor();
    await expect(rowOf(a.hostname).locator('.fingerprint').textContent()).resolves.toBe(a.fingerprint);
  });

  test("3: accept shows the fingerprint to compare, which is the agent's own", async () => {
    await rowOf(a.hostname).getByRole('button', { name: 'Accept…' }).click();
    const shown = await dialog().locator('[data-testid="confirm-fingerprint"]').textContent();
    expect(shown).toBe(a.fingerprint);
    await dialog().getByRole('button', { name: 'Accept', exact: true }).click();
    await dialog().waitFor({ state: 'detached' });
    await rowOf(a.hostname).waitFor({ state: 'detached' });
  });

  test('4: the node page shows it reach active without a reload', async () => {
    await nav('Nodes').click();
    await search(a.hostname);
    await page.getByRole('link', { name: a.hostname, exact: true }).click();
    await page.locator('[data-testid="node-state"]', { hasText: /^active$/ }).waitFor();
    await page.locator('[data-testid="timeline"]', { hasText: 'initialized' }).waitFor();
    await expect(page.locator('[data-testid="workflow-link"]').textContent()).resolves.toContain(`node:${a.hostname}`);
    expect(await page.evaluate(() => (globalThis as { sameDocument?: boolean }).sameDocument)).toBe(true);
  });

  test('5a: two more agents are accepted together (bulk accept)', async () => {
    [b, c] = await Promise.all([agents.start('dash-b'), agents.start('dash-c')]);
    await nav('Unmanaged').click();
    for (const agent of [b, c]) await rowOf(agent.hostname).getByRole('checkbox').check();
    await page.getByRole('button', { name: 'Accept selected…' }).click();
    for (const agent of [b, c]) await expect(dialog().getByText(agent.fingerprint).count()).resolves.toBe(1);
    await dialog().getByRole('button', { name: 'Accept 2' }).click();
    await dialog().waitFor({ state: 'detached' });
    for (const agent of [b, c]) await rowOf(agent.hostname).waitFor({ state: 'detached' });
  });

  test('5b: commissioning two nodes from the node list shows the task and its per-node progress', async () => {
    await nav('Nodes').click();
    await search(suffix());
    for (const agent of [a, b, c]) await rowOf(agent.hostname).locator('[data-state="active"]').waitFor();
    for (const agent of [a, b]) await rowOf(agent.hostname).getByRole('checkbox').check();
    await page.getByRole('button', { name: 'Commission…', exact: true }).click();
    await dialog().getByRole('button', { name: 'Commission 2 nodes' }).click();
    await page.waitForURL(/#\/tasks\/[0-9a-f-]{36}$/);
    await page.locator('[data-testid="task-status"]', { hasText: 'succeeded' }).waitFor();
    await page.locator('[data-testid="progress"]', { hasText: '2/2 done' }).waitFor();
    for (const agent of [a, b]) await rowOf(agent.hostname).locator('.status', { hasText: 'succeeded' }).waitFor();
    expect(await page.evaluate(() => (globalThis as { sameDocument?: boolean }).sameDocument)).toBe(true);

    await page.getByRole('link', { name: a.hostname, exact: true }).click();
    await page.locator('[data-testid="node-state"]', { hasText: /^commissioned$/ }).waitFor();
    await page.locator('[data-testid="timeline"]', { hasText: 'commissioned' }).waitFor();
    fs.mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
  });

  test("6: a refused action shows the API's error text", async () => {
    await nav('Nodes').click();
    await search(suffix());
    for (const agent of [a, b]) {
      await rowOf(agent.hostname).locator('[data-state="commissioned"]').waitFor();
      await rowOf(agent.hostname).getByRole('checkbox').check();
    }
    await page.getByRole('button', { name: 'Commission…', exact: true }).click();
    await dialog().getByRole('button', { name: 'Commission 2 nodes' }).click();
    const alert = dialog().getByRole('alert');
    await alert.waitFor();
    await expect(alert.textContent()).resolves.toBe(`commission refused, nothing started: ${a.hostname} is commissioned; ${b.hostname} is commissioned`);
    // Still on the list: nothing started.
    expect(page.url()).toMatch(/#\/nodes/);
    await dialog().getByRole('button', { name: 'Close' }).click();
    await dialog().waitFor({ state: 'detached' });
  });

  test('logging out returns to the log-in form and the old cookie is refused', async () => {
    const [old] = await context.cookies();
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.getByLabel('Operator token').waitFor();
    expect((await call('GET', '/api/v1/nodes', { cookie: `nl_session=${old!.value}` })).status).toBe(401);
  });
});
