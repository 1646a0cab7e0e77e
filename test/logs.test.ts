import { Writable } from 'node:stream';
import { createLogger, log, replaceLogger, withLogContext, type LogLevel } from '../src/log';
import { acceptNode, agentsOf, nodeState, startTestService, type TestService } from './support/harness';
import { waitFor } from './support/wait-for';

/** A destination the logger writes its JSON lines into, kept for the test to read. */
function capture(level: LogLevel = 'debug') {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      done();
    },
  });
  const logger = createLogger({ level, destination });
  return {
    logger,
    lines,
    records: () => lines.map((l) => JSON.parse(l) as Record<string, any>),
    flush: () => new Promise<void>((resolve) => setImmediate(resolve)),
  };
}

describe('the logger', () => {
  let undo: (() => void) | undefined;
  afterEach(() => {
    undo?.();
    undo = undefined;
  });

  test('writes one JSON object a line with level, time, message, the given fields and the async context', async () => {
    const out = capture();
    undo = replaceLogger(out.logger);
    await withLogContext({ requestId: 'req-1' }, async () => {
      await Promise.resolve();
      log.child({ hostname: 'n1.test' }).info('node n1.test: active -> commissioning', { to: 'commissioning' });
    });
    log.warn('outside any request');
    await out.flush();

    const [inside, outside] = out.records();
    expect(inside).toMatchObject({ level: 'info', msg: 'node n1.test: active -> commissioning', requestId: 'req-1', hostname: 'n1.test', to: 'commissioning' });
    expect(new Date(inside!.time).toISOString()).toBe(inside!.time);
    expect(outside).toMatchObject({ level: 'warn', msg: 'outside any request' });
    expect(outside!.requestId).toBeUndefined();
  });

  test('redacts secrets by path: the token, the session cookie, agent signatures, BMC passwords', async () => {
    const out = capture();
    undo = replaceLogger(out.logger);
    const secrets = ['Bearer tok-3f9a', 'nl_session=c00k1e', 'c2lnbmF0dXJl', 'ipmi-pa55', 'sealed-blob'];
    log.info('request as received', {
      headers: { authorization: secrets[0], cookie: secrets[1], 'x-node-signature': secrets[2], 'content-type': 'application/json' },
      node: { hostname: 'bmc-1.test', driver_info: { ipmi_address: '10.0.0.5', ipmi_password: secrets[3] }, driver_secrets: secrets[4] },
    });
    await out.flush();

    const [record] = out.records();
    expect(record!.headers).toEqual({ authorization: '[redacted]', cookie: '[redacted]', 'x-node-signature': '[redacted]', 'content-type': 'application/json' });
    expect(record!.node).toEqual({ hostname: 'bmc-1.test', driver_info: { ipmi_address: '10.0.0.5', ipmi_password: '[redacted]' }, driver_secrets: '[redacted]' });
    for (const secret of secrets) expect(out.lines.join('\n')).not.toContain(secret);
  });

  test('LOG_LEVEL keeps its meaning, read on every line; pretty output is not JSON', () => {
    const printed: string[] = [];
    const keep = (...args: unknown[]) => void printed.push(args.map(String).join(' '));
    const spies = [jest.spyOn(console, 'log').mockImplementation(keep), jest.spyOn(console, 'error').mockImplementation(keep)];
    const level = process.env.LOG_LEVEL;
    try {
      process.env.LOG_LEVEL = 'error';
      log.warn('dropped at error');
      log.error('kept at error');
      process.env.LOG_LEVEL = 'silent';
      log.error('dropped when silent');
      process.env.LOG_LEVEL = 'debug';
      log.debug('kept at debug');
      expect(printed.map((p) => JSON.parse(p).msg)).toEqual(['kept at error', 'kept at debug']);

      printed.length = 0;
      createLogger({ pretty: true, level: 'info' }).info({ hostname: 'n2.test' }, 'for a terminal');
      expect(printed).toHaveLength(1);
      expect(printed[0]).toContain('for a terminal');
      expect(printed[0]).toContain('n2.test');
      expect(() => JSON.parse(printed[0]!)).toThrow();
    } finally {
      process.env.LOG_LEVEL = level;
      spies.forEach((s) => s.mockRestore());
    }
  });
});

describe('a real service', () => {
  let ts: TestService;
  const agents = agentsOf(() => ts);
  const out = capture();
  let undo: () => void;

  beforeAll(async () => {
    undo = replaceLogger(out.logger);
    ts = await startTestService();
  }, 120_000);
  afterAll(async () => {
    await agents.stopAll();
    await ts?.stop();
    undo?.();
  });

  const requestLines = (id: string) => out.records().filter((r) => r.requestId === id && r.msg === 'request');

  test('an API request is logged with its request id (kept from x-request-id, returned in the response) and route; the token never appears', async () => {
    const res = await ts.api.request('POST', '/api/v1/commission/nodes', { json: { nodes: [] }, headers: { 'x-request-id': 'ops-1234.a' } });
    expect(res.status).toBe(400);
    expect(res.headers.get('x-request-id')).toBe('ops-1234.a');
    await waitFor(async () => requestLines('ops-1234.a'), (l) => l.length === 1, { what: 'the request line' });
    expect(requestLines('ops-1234.a')[0]).toMatchObject({ level: 'info', method: 'POST', route: '/api/v1/commission/nodes', path: '/api/v1/commission/nodes', status: 400 });

    // No id, or one that is not a plain token: the service makes one.
    const variants: Record<string, string>[] = [{}, { 'x-request-id': 'two words\twith a tab' }, { 'x-request-id': 'x'.repeat(200) }];
    for (const headers of variants) {
      const made = await ts.api.request('POST', '/api/v1/commission/nodes', { json: { nodes: [] }, headers });
      const id = made.headers.get('x-request-id')!;
      expect(id).toMatch(/^[0-9a-f-]{36}$/);
      await waitFor(async () => requestLines(id), (l) => l.length === 1, { what: `the line of ${id}` });
    }
    expect(out.lines.join('\n')).not.toContain(ts.service.apiToken);
  });

  test("an accepted node's transitions and agent calls are logged with its hostname, workflow id and activity", async () => {
    const agent = await agents.start('logged');
    expect((await acceptNode(ts, agent.hostname, agent.fingerprint)).status).toBe(202);
    await waitFor(() => nodeState(ts, agent.hostname), (s) => s === 'active', { what: `${agent.hostname} to be active` });

    const mine = out.records().filter((r) => r.hostname === agent.hostname);
    const transition = mine.find((r) => r.from === 'initializing' && r.to === 'active');
    expect(transition).toMatchObject({ level: 'info', event: 'initialized', workflowId: `node:${agent.hostname}` });
    expect(transition!.msg).toContain(`node ${agent.hostname}: initializing -> active`);
    const call = mine.find((r) => r.msg === 'agent call');
    expect(call).toMatchObject({ level: 'debug', workflowId: `node:${agent.hostname}`, method: 'GET' });
    expect(typeof call!.activity).toBe('string');
    expect(out.lines.join('\n')).not.toContain(ts.service.apiToken);
  });
});
