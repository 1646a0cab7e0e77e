import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { annealApi, must } from './support/anneal-api';
import { acceptNode, agentsOf, nodeState, startTestService, type TestAgent, type TestService } from './support/harness';
import { waitFor } from './support/wait-for';

/**
 * The dashboard's Deployments page (issue #12) in Debian's headless Chromium (playwright-core drives
 * /usr/bin/chromium), against the real service and two real sandbox agents that run the script roles:
 * the tree from system down, a deployment's path, roles and noderoles moving on without a reload, a
 * failed noderole and its Retry.
 */

const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
/** The suite shares two cores with other work: a page waits for what it shows, generously. */
const PAGE_TIMEOUT_MS = 120_000;
/** UPDATE_SCREENSHOTS=1 writes the README's picture of the page; other runs keep theirs in a temp dir. */
const SCREENSHOT = process.env.UPDATE_SCREENSHOTS
  ? path.resolve(__dirname, '..', 'docs', 'dashboard-deployments.png')
  : path.join(os.tmpdir(), `dashboard-deployments-${process.pid}.png`);

jest.setTimeout(PAGE_TIMEOUT_MS + 60_000);

let ts: TestService;
let browser: Browser;
let a: TestAgent;
let b: TestAgent;
const agents = agentsOf(() => ts);
const anneal = annealApi(() => ts);
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'nl-dash-deploy-'));
/** The base role waits for this file: the test decides when the first anneal may finish. */
const GO = path.join(work, 'go');
/** The flaky role fails (exit 1) until this file exists. */
const MARKER = path.join(work, 'marker');

// Names of this file's own: the annealer's workflow ids are made from deployment names.
const uniq = Math.random().toString(36).slice(2, 6);
const WEB = `web-${uniq}`;
const CANARY = `web-${uniq}-canary`;
const BASE = `base-${uniq}`;
const APP = `app-${uniq}`;
const FLAKY = `flaky-${uniq}`;

beforeAll(async () => {
  ts = await startTestService();
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
  [a, b] = await Promise.all([agents.start('dep-a'), agents.start('dep-b')]);
  // A script role runs only on an active node: both are accepted and initialized first.
  for (const agent of [a, b]) expect((await acceptNode(ts, agent.hostname, agent.fingerprint)).status).toBe(202);
  for (const agent of [a, b]) await waitFor(() => nodeState(ts, agent.hostname), (s) => s === 'active', { what: `${agent.hostname} to be active`, timeoutMs: PAGE_TIMEOUT_MS });
}, 300_000);

afterAll(async () => {
  // The held role would keep its node busy: let it end before the agents go.
  fs.writeFileSync(GO, '');
  await browser?.close();
  await agents.stopAll();
  await ts?.stop();
  fs.rmSync(work, { recursive: true, force: true });
});

const url = (p: string) => new URL(p, ts.service.apiUrl).toString();
const script = (...lines: string[]) => ['#!/bin/sh', ...lines, ''].join('\n');

describe('an operator watches a deployment anneal (one journey, step by step)', () => {
  let context: BrowserContext;
  let page: Page;

  beforeAll(async () => {
    context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
    page = await context.newPage();
    page.setDefaultTimeout(PAGE_TIMEOUT_MS);
  });
  afterAll(async () => {
    await context?.close();
  });

  const nav = (name: string) => page.locator('header nav').getByRole('link', { name, exact: true });
  const treeRow = (name: string) => page.locator(`[data-testid="deployment-tree"] tr[data-deployment="${name}"]`);
  const noderoleRow = (role: string, node: string) => page.locator(`[data-testid="noderoles"] tr[data-role="${role}"][data-node="${node}"]`);
  const stateOf = (role: string, node: string, state: string) => noderoleRow(role, node).locator(`.badge[data-state="${state}"]`);
  const dialog = () => page.getByRole('dialog');

  test('1: a deployment committed through the API shows in the tree under system, its noderoles in flight', async () => {
    must(await ts.api.post('/api/v1/roles', { name: BASE, script: script(`while [ ! -e '${GO}' ]; do sleep 0.2; done`, 'echo "base ready"'), attributes: { motd: 'hello' } }), 201, 'role base');
    must(await ts.api.post('/api/v1/roles', { name: APP, script: script('echo "app started"'), requires: [BASE] }), 201, 'role app');
    await anneal.deployment(WEB);
    await anneal.deployment(CANARY, WEB);
    must(await ts.api.request('PUT', `/api/v1/deployments/${WEB}/roles/${BASE}`, { json: { attributes: { motd: 'web tier' } } }), 200, 'deployment attributes');
    // Binding app binds base, which it requires, on the same nodes.
    await anneal.bind(WEB, APP, [a.hostname, b.hostname]);
    await anneal.commit(WEB);

    await page.goto(url('/dashboard/'));
    await page.getByLabel('Operator token').fill(ts.service.apiToken);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.locator('[data-testid="live"]', { hasText: 'live' }).waitFor();
    // Marks this document: a reload would lose it.
    await page.evaluate(() => ((globalThis as { sameDocument?: boolean }).sameDocument = true));

    await nav('Deployments').click();
    await page.getByRole('heading', { name: 'Deployments' }).waitFor();
    await treeRow('system').waitFor();
    await expect(treeRow('system').getAttribute('data-depth')).resolves.toBe('0');
    await expect(treeRow(WEB).getAttribute('data-depth')).resolves.toBe('1');
    await expect(treeRow(CANARY).getAttribute('data-depth')).resolves.toBe('2');
    await treeRow(WEB).locator('.badge[data-state="committed"]').waitFor();
    await treeRow(CANARY).locator('.badge[data-state="proposed"]').waitFor();
    await expect(treeRow(WEB).locator('td.num').textContent()).resolves.toBe('2');
    // Base is held on both nodes, so app waits in todo on both until the test lets base finish.
    await treeRow(WEB).locator('.badge[data-state="todo"][data-count="2"]').waitFor();
    // The tree is in order: every child right after its parent.
    const order = await page.locator('[data-testid="deployment-tree"] tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-deployment')));
    expect(order.indexOf(CANARY)).toBe(order.indexOf(WEB) + 1);
  });

  test("2: the deployment's page shows its path, roles and noderoles, and the noderoles turning active without a reload", async () => {
    await treeRow(WEB).getByRole('link', { name: WEB, exact: true }).click();
    await page.waitForURL((u) => u.hash === `#/deployments/${WEB}`);
    await expect(page.locator('[data-testid="deployment-path"]').textContent()).resolves.toBe(`Deployments›system›${WEB}`);
    await page.locator('[data-testid="deployment-subtree"] li[data-deployment]', { hasText: CANARY }).waitFor();
    await page.locator(`[data-testid="deployment-roles"] tr[data-role="${BASE}"]`, { hasText: '"motd": "web tier"' }).waitFor();
    await page.locator(`[data-testid="deployment-roles"] tr[data-role="${APP}"]`).waitFor();
    for (const node of [a.hostname, b.hostname]) {
      await stateOf(BASE, node, 'transition').waitFor();
      await stateOf(APP, node, 'todo').waitFor();
    }

    fs.writeFileSync(GO, '');

    for (const node of [a.hostname, b.hostname]) {
      for (const role of [BASE, APP]) {
        await stateOf(role, node, 'active').waitFor();
        await expect(noderoleRow(role, node).locator('[data-testid="exit-code"]').textContent()).resolves.toBe('0');
      }
    }
    await page.locator('[data-testid="noderole-counts"] .badge[data-state="active"][data-count="4"]').waitFor();
    expect(await page.evaluate(() => (globalThis as { sameDocument?: boolean }).sameDocument)).toBe(true);
  });

  test('3: a failing noderole shows error and its exit code; once its cause is fixed, Retry brings it to active', async () => {
    must(await ts.api.post('/api/v1/roles', { name: FLAKY, script: script(`[ -e '${MARKER}' ] || { echo "flaky: ${MARKER} is missing" >&2; exit 1; }`, 'echo "flaky fine"') }), 201, 'role flaky');
    await anneal.propose(WEB);
    await anneal.bind(WEB, FLAKY, [a.hostname]);
    const failing = await anneal.commit(WEB);
    await anneal.settle(failing);

    // The page, open all along, hears of the commit and follows it to the error.
    await stateOf(FLAKY, a.hostname, 'error').waitFor();
    await expect(noderoleRow(FLAKY, a.hostname).locator('[data-testid="exit-code"]').textContent()).resolves.toBe('1');
    await expect(noderoleRow(FLAKY, a.hostname).locator('[data-testid="noderole-error"]').textContent()).resolves.not.toBe('');
    // Unchanged noderoles did not run again.
    for (const node of [a.hostname, b.hostname]) await expect(noderoleRow(BASE, node).locator('td.num').first().textContent()).resolves.toBe('1');
    await page.locator('[data-testid="noderole-counts"] .badge[data-state="error"][data-count="1"]').waitFor();
    fs.mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });

    fs.writeFileSync(MARKER, '');
    await noderoleRow(FLAKY, a.hostname).getByRole('button', { name: 'Retry…' }).click();
    await expect(dialog().textContent()).resolves.toContain(`${MARKER} is missing`);
    await dialog().getByRole('button', { name: 'Retry', exact: true }).click();
    await dialog().waitFor({ state: 'detached' });
    await page.locator('.notice', { hasText: `${FLAKY} on ${a.hostname} retried` }).waitFor();

    await stateOf(FLAKY, a.hostname, 'active').waitFor();
    await expect(noderoleRow(FLAKY, a.hostname).locator('td.num').first().textContent()).resolves.toBe('2');
    await expect(noderoleRow(FLAKY, a.hostname).locator('[data-testid="exit-code"]').textContent()).resolves.toBe('0');
    await expect(noderoleRow(FLAKY, a.hostname).getByRole('button', { name: 'Retry…' }).count()).resolves.toBe(0);
    await page.locator('[data-testid="noderole-counts"] .badge[data-state="active"][data-count="5"]').waitFor();
    expect((await anneal.noderole(WEB, FLAKY, a.hostname)).state).toBe('active');
    expect(await page.evaluate(() => (globalThis as { sameDocument?: boolean }).sameDocument)).toBe(true);
  });

  test('4: the noderoles table pages by cursor, forward and back, and a state filter starts it over', async () => {
    const pager = page.locator('[data-testid="noderole-pager"]');
    const ids = () => page.locator('[data-testid="noderoles"] tbody tr').evaluateAll((rows) => rows.map((r) => Number(r.getAttribute('data-noderole'))));
    const all = (await anneal.noderoles({ deployment: WEB })).map((n) => n.id as number);
    expect(all).toHaveLength(5);

    await page.goto(url(`/dashboard/#/deployments/${WEB}?limit=2`));
    await pager.getByText('1–2 of 5').waitFor();
    expect(await ids()).toEqual(all.slice(0, 2));
    await pager.getByRole('button', { name: 'Next →' }).click();
    await pager.getByText('3–4 of 5').waitFor();
    expect(await ids()).toEqual(all.slice(2, 4));
    await pager.getByRole('button', { name: 'Next →' }).click();
    await pager.getByText('5–5 of 5').waitFor();
    expect(await ids()).toEqual(all.slice(4));
    await expect(pager.getByRole('button', { name: 'Next →' }).isDisabled()).resolves.toBe(true);
    await pager.getByRole('button', { name: '← Previous' }).click();
    await pager.getByText('3–4 of 5').waitFor();
    expect(await ids()).toEqual(all.slice(2, 4));

    await page.getByLabel('State').selectOption('active');
    await page.waitForURL((u) => u.hash === `#/deployments/${WEB}?state=active&limit=2`);
    await pager.getByText('1–2 of 5').waitFor();
    expect(await ids()).toEqual(all.slice(0, 2));
  });
});
