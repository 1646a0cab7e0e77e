import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import knexFactory, { type Knex } from 'knex';
import { ConfigError, loadConfig } from '../src/config';
import { SecretBox, SecretsKeyMismatch } from '../src/secrets/secret-box';
import { resolveSecretsKey } from '../src/secrets/secrets-key';
import { startService } from '../src/service';
import { startBmc, type Bmc } from './support/bmc';
import { waitForTask } from './support/fleet';
import { HttpClient } from './support/http-client';
import { nodeState, startTestService, type TestService } from './support/harness';
import { postgresAvailable } from './support/test-database';

const SEALED = /^v1:[A-Za-z0-9+/]{16}:[A-Za-z0-9+/]{22}==:[A-Za-z0-9+/]+={0,2}$/;
const tempDirs: string[] = [];
const tempDir = () => {
  tempDirs.push(fs.mkdtempSync(path.join(os.tmpdir(), 'nl-secrets-')));
  return tempDirs.at(-1)!;
};
afterAll(() => tempDirs.forEach((dir) => fs.rmSync(dir, { recursive: true, force: true })));

describe('the secret box', () => {
  const box = new SecretBox(randomBytes(32));
  const here = { node: 'a.test', field: 'ipmi_password' };

  test('a sealed value is versioned ciphertext, new at every seal, and opens where it was sealed', () => {
    const first = box.seal('hunter2', here);
    const second = box.seal('hunter2', here);
    expect(first).toMatch(SEALED);
    expect(first).not.toContain('hunter2');
    expect(second).not.toBe(first);
    expect(box.open(first, here)).toBe('hunter2');
  });

  test('it does not open for another node, another field, another key, or once altered', () => {
    const sealed = box.seal('hunter2', here);
    expect(() => box.open(sealed, { ...here, node: 'b.test' })).toThrow(SecretsKeyMismatch);
    expect(() => box.open(sealed, { ...here, field: 'other' })).toThrow(SecretsKeyMismatch);
    expect(() => new SecretBox(randomBytes(32)).open(sealed, here)).toThrow(SecretsKeyMismatch);
    const [v, iv, tag, data] = sealed.split(':') as [string, string, string, string];
    const flipped = Buffer.from(data, 'base64');
    flipped[0] = flipped[0]! ^ 1;
    expect(() => box.open([v, iv, tag, flipped.toString('base64')].join(':'), here)).toThrow(SecretsKeyMismatch);
  });

  test('the refusal names the node and says the key does not match, as a 503', () => {
    const err = (() => {
      try {
        box.openAll('b.test', { ipmi_password: box.seal('hunter2', here) });
      } catch (e) {
        return e as SecretsKeyMismatch;
      }
    })();
    expect(err).toBeInstanceOf(SecretsKeyMismatch);
    expect(err).toMatchObject({ status: 503, code: 'secrets_key_mismatch', details: { hostname: 'b.test', field: 'ipmi_password' } });
    expect(err!.message).toMatch(/node b\.test .*secrets key .*does not match/);
  });
});

describe('the secrets key', () => {
  test('SECRETS_KEY must be base64 of 32 bytes: otherwise a ConfigError names it without repeating it', () => {
    const good = randomBytes(32).toString('base64');
    expect(loadConfig({ SECRETS_KEY: good }).secretsKey).toEqual(Buffer.from(good, 'base64'));
    for (const bad of ['not a key!', randomBytes(16).toString('base64'), 'c2hvcnQ=']) {
      expect(() => loadConfig({ SECRETS_KEY: bad })).toThrow(ConfigError);
      expect(() => loadConfig({ SECRETS_KEY: bad })).toThrow(/^SECRETS_KEY must be base64 of 32 random bytes/);
      expect(() => loadConfig({ SECRETS_KEY: bad })).not.toThrow(bad);
    }
  });

  test('without SECRETS_KEY, DATA_DIR/secrets.key is made once (mode 0600), and racing processes get the same key', async () => {
    const dir = tempDir();
    const keys = await Promise.all([1, 2, 3, 4].map(() => resolveSecretsKey(undefined, dir)));
    const file = path.join(dir, 'secrets.key');
    expect(keys.every((k) => k.key.equals(keys[0]!.key) && k.source === file)).toBe(true);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(fs.readdirSync(dir)).toEqual(['secrets.key']);
    expect((await resolveSecretsKey(undefined, dir)).key).toEqual(keys[0]!.key);
    const configured = randomBytes(32);
    expect(await resolveSecretsKey(configured, dir)).toEqual({ key: configured, source: 'SECRETS_KEY' });
  });

  test('a damaged key file stops start-up naming the file', async () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, 'secrets.key'), 'truncated\n', { mode: 0o600 });
    await expect(resolveSecretsKey(undefined, dir)).rejects.toThrow(ConfigError);
    await expect(resolveSecretsKey(undefined, dir)).rejects.toThrow(`${path.join(dir, 'secrets.key')} must be base64`);
  });
});

describe('through the service, against a real BMC', () => {
  let ts: TestService;
  let bmc: Bmc;
  let knex: Knex;
  let mac = 0x10;

  beforeAll(async () => {
    if (!(await postgresAvailable())) throw new Error('PostgreSQL at 127.0.0.1:5432 is required for this suite');
    ts = await startTestService();
    bmc = await startBmc();
    knex = knexFactory({ client: 'pg', connection: ts.config.databaseUrl, pool: { min: 0, max: 2 } });
  }, 120_000);
  afterAll(async () => {
    await knex?.destroy();
    await bmc?.stop();
    await ts?.stop();
  });

  const nextMac = () => `52:54:00:00:01:${(mac++).toString(16).padStart(2, '0')}`;
  const enroll = (label: string) =>
    ts.api.post('/api/v1/nodes', { name: ts.hostname(label), driver: 'ipmi', driver_info: bmc.driverInfo(), ports: [{ address: nextMac() }] });
  async function manage(name: string) {
    const accepted = await ts.api.request('PUT', `/api/v1/nodes/${name}/states/provision`, { json: { target: 'manage' } });
    expect(accepted.status).toBe(202);
    return (await waitForTask(ts, accepted.body.task_id)).body;
  }
  const storedSecrets = async (name: string): Promise<Record<string, string>> => (await knex('nodes').where({ hostname: name }).first()).driver_secrets;
  const wholeRow = async (name: string) => JSON.stringify(await knex('nodes').where({ hostname: name }).first());

  test('an enrolled password is stored sealed, under a key kept in DATA_DIR, and manage still reaches the BMC with it', async () => {
    const name = ts.hostname('sealed');
    expect((await enroll('sealed')).status).toBe(201);

    const stored = await storedSecrets(name);
    expect(Object.keys(stored)).toEqual(['ipmi_password']);
    expect(stored.ipmi_password).toMatch(SEALED);
    expect(await wholeRow(name)).not.toContain(bmc.password);
    expect(fs.statSync(path.join(ts.dataDir, 'secrets.key')).mode & 0o777).toBe(0o600);

    expect(await manage(name)).toMatchObject({ status: 'succeeded' });
    expect(await nodeState(ts, name)).toBe('manageable');
    expect((await ts.api.get(`/api/v1/nodes/${name}/states/power`)).body).toMatchObject({ power_state: 'power off', source: 'bmc' });

    // A changed password is sealed too: the same words, a new ciphertext, still no plain text.
    const patched = await ts.api.request('PATCH', `/api/v1/nodes/${name}`, { json: { driver_info: { ipmi_password: bmc.password } } });
    expect(patched.status).toBe(200);
    const resealed = await storedSecrets(name);
    expect(resealed.ipmi_password).toMatch(SEALED);
    expect(resealed.ipmi_password).not.toBe(stored.ipmi_password);
    expect(await wholeRow(name)).not.toContain(bmc.password);
    expect((await ts.api.get(`/api/v1/nodes/${name}/states/power`)).body).toMatchObject({ power_state: 'power off', source: 'bmc' });
  });

  test('a plain-text password stored before this change is sealed at start-up and still works', async () => {
    const name = ts.hostname('old-row');
    const { ipmi_password: password, ...visible } = bmc.driverInfo();
    // As enrollNode wrote rows before encryption at rest.
    await knex('nodes').insert({
      hostname: name,
      state: 'enroll',
      driver: 'ipmi',
      driver_info: JSON.stringify(visible),
      driver_secrets: JSON.stringify({ ipmi_password: password }),
      instance_info: '{}',
    });

    await ts.restart();

    const stored = await storedSecrets(name);
    expect(stored.ipmi_password).toMatch(SEALED);
    expect(await wholeRow(name)).not.toContain(bmc.password);
    expect(await manage(name)).toMatchObject({ status: 'succeeded' });
    // Sealed once: a second start leaves the row as it is.
    await ts.restart();
    expect(await storedSecrets(name)).toEqual(stored);
  });

  test('a sealed password copied to another node does not open there: 503 naming it, and a clear last_error on manage', async () => {
    const source = ts.hostname('copied-from');
    const target = ts.hostname('copied-to');
    await enroll('copied-from');
    await enroll('copied-to');
    await knex('nodes').where({ hostname: target }).update({ driver_secrets: JSON.stringify(await storedSecrets(source)) });

    const read = await ts.api.get(`/api/v1/nodes/${target}/states/power`);
    expect(read.status).toBe(503);
    expect(read.body.error).toMatchObject({ code: 'secrets_key_mismatch', hostname: target });
    expect(read.body.error.message).toMatch(new RegExp(`node ${target.replace(/\./g, '\\.')} does not decrypt: the secrets key .* does not match`));

    expect(await manage(target)).toMatchObject({ status: 'failed' });
    const node = (await ts.api.get(`/api/v1/nodes/${target}`)).body;
    expect(node.state).toBe('enroll');
    expect(node.last_error).toMatch(new RegExp(`^power validation: the ipmi_password of node ${target.replace(/\./g, '\\.')} does not decrypt`));
    expect(await manage(source)).toMatchObject({ status: 'succeeded' });
  });

  test('a process started with another SECRETS_KEY names the nodes it cannot open and answers 503, never 500', async () => {
    const name = ts.hostname('other-key');
    await enroll('other-key');
    const warnings: string[] = [];
    const spy = jest.spyOn(console, 'error').mockImplementation((...args: unknown[]) => void warnings.push(args.map(String).join(' ')));
    const dataDir = tempDir();
    // A second API process on the same database and task queue, configured with a key of its own.
    const { secretsKey } = loadConfig({ SECRETS_KEY: randomBytes(32).toString('base64') });
    const other = await startService({ ...ts.config, dataDir, port: 0, secretsKey }, 'api');
    try {
      spy.mockRestore();
      expect(warnings.filter((w) => w.includes(name) && w.includes('do not decrypt with the secrets key from SECRETS_KEY'))).toHaveLength(1);

      const read = await new HttpClient(other.apiUrl!, other.apiToken).get(`/api/v1/nodes/${name}/states/power`);
      expect(read.status).toBe(503);
      expect(read.body.error).toMatchObject({ code: 'secrets_key_mismatch', hostname: name });
      expect(read.body.error.message).toContain('does not match the key it was written with');
      // The rightful key still opens it.
      expect((await ts.api.get(`/api/v1/nodes/${name}/states/power`)).body).toMatchObject({ source: 'bmc' });
    } finally {
      spy.mockRestore();
      await other.stop();
    }
  });
});
