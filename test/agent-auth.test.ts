import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { AgentClient } from '../src/agent-client';
import { loadOrCreateIdentity } from '../src/identity/identity';
import { AGENT_PATHS } from '../src/protocol';
import { startTestAgent, startTestService, type TestAgent, type TestService } from './support/harness';
import { waitFor } from './support/wait-for';

let ts: TestService;
let agent: TestAgent;

beforeAll(async () => {
  ts = await startTestService();
  agent = await startTestAgent(ts, ts.hostname('guarded'));
  await waitFor(() => ts.api.get('/api/v1/unmanaged_nodes'), (r) => r.body.length === 1, { what: 'the agent to announce' });
});
afterAll(async () => {
  await agent.stop();
  await ts.stop();
});

test('the agent pins the server key it first met, in its state dir', async () => {
  const pin = path.join(agent.stateDir, 'server.fingerprint');
  const text = await waitFor(async () => (fs.existsSync(pin) ? fs.readFileSync(pin, 'utf8') : ''), Boolean, { what: 'the pin file' });
  expect(text.trim()).toBe(ts.service.serverFingerprint);
});

test('the agent obeys only the server it pinned: another key gets 403 and the operation does not run', async () => {
  const stranger = await loadOrCreateIdentity(fs.mkdtempSync(path.join(os.tmpdir(), 'nl-stranger-')), 'stranger');
  const client = new AgentClient(stranger, 2000);
  const node = { hostname: agent.hostname, address: agent.handle.address, fingerprint: agent.fingerprint };

  await expect(client.call(node, 'POST', AGENT_PATHS.services, { services: ['sshd'] })).rejects.toMatchObject({ status: 403 });
  expect(fs.existsSync(path.join(agent.sandbox, 'run/nodeagent/services/sshd'))).toBe(false);
});

test('a request without a client certificate gets 403', async () => {
  const status = await new Promise<number>((resolve, reject) => {
    https
      .get(`${agent.handle.address}${AGENT_PATHS.ping}`, { rejectUnauthorized: false }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      })
      .on('error', reject);
  });
  expect(status).toBe(403);
});
