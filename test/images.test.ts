import { createHash, randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { NotFound } from '../src/domain/errors';
import { ImageCheckFailed } from '../src/images/image-sources';
import type { Knex } from 'knex';
import { holdImage, verifyImage } from '../src/images/image-service';
import type { HttpResponse } from './support/http-client';
import { startImagesApp, type ImagesApp } from './support/images-app';
import { freePort } from './support/ports';
import { waitFor } from './support/wait-for';

const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

let app: ImagesApp;
let dir: string;
let files: { kernel: string; initrd: string; disk: string };
// Larger than one read chunk (64 KiB), so hashing and serving really stream.
const disk = randomBytes(300_000);
let web: { url: string; closedUrl: string; stop(): Promise<void> };

/** What the test web server serves: a disk image, a kernel, a 404, a server that never answers, one that refuses HEAD. */
async function startWebServer() {
  const sockets = new Set<Socket>();
  const server = http.createServer((req, res) => {
    switch (req.url) {
      case '/disk.img':
        res.writeHead(200, { 'content-length': disk.length }).end(req.method === 'HEAD' ? undefined : disk);
        return;
      case '/kernel':
        res.writeHead(200, { 'content-length': 6 }).end(req.method === 'HEAD' ? undefined : 'kernel');
        return;
      case '/no-head':
        if (req.method === 'HEAD') res.writeHead(405).end();
        else res.writeHead(200).end('initrd');
        return;
      case '/hang':
        return; // never answers
      default:
        res.writeHead(404).end('no such file');
    }
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  server.listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  // A port nothing listens on: connections are refused at once.
  const closedUrl = `http://127.0.0.1:${await freePort()}`;
  return {
    url,
    closedUrl,
    stop: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

beforeAll(async () => {
  app = await startImagesApp({ timeoutMs: 1_000 });
  web = await startWebServer();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nl-images-test-'));
  files = { kernel: path.join(dir, 'vmlinuz'), initrd: path.join(dir, 'initrd.img'), disk: path.join(dir, 'disk.img') };
  fs.writeFileSync(files.kernel, 'kernel');
  fs.writeFileSync(files.initrd, 'initrd');
  fs.writeFileSync(files.disk, disk);
});
afterAll(async () => {
  await web?.stop();
  await app?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

let serial = 0;
/** A valid registration of the local files; override any field. */
function makeImage(overrides: Record<string, unknown> = {}) {
  return { name: `img-${++serial}`, ...files, sha256: sha256(disk), ...overrides };
}

const listImages = async () => (await app.api.get('/api/v1/images')).body;

function expectError(res: HttpResponse, status: number, code: string) {
  expect(res.status).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/application\/json/);
  expect(res.body.error.code).toBe(code);
  expect(res.body.error.message).toEqual(expect.any(String));
}

describe('registering an image', () => {
  test('file parts: 201 with the disk size and sha256, then listed and shown', async () => {
    const body = makeImage({ sha256: sha256(disk).toUpperCase() });

    const res = await app.api.post('/api/v1/images', body);

    expect(res.status).toBe(201);
    expect(res.headers.get('location')).toBe(`/api/v1/images/${body.name}`);
    expect(res.body).toEqual({ ...body, sha256: sha256(disk), size: disk.length, created_at: expect.any(String) });
    expect((await app.api.get(`/api/v1/images/${body.name}`)).body).toEqual(res.body);
    expect(await listImages()).toContainEqual(res.body);
  });

  test('an http disk is downloaded and hashed as it streams', async () => {
    const body = makeImage({ kernel: `${web.url}/kernel`, initrd: `${web.url}/no-head`, disk: `${web.url}/disk.img` });

    const res = await app.api.post('/api/v1/images', body);

    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ disk: `${web.url}/disk.img`, sha256: sha256(disk), size: disk.length });
  });
});

describe('a refused registration names the field and changes nothing', () => {
  const missing = (): string => path.join(dir, 'no-such-file');
  type Case = [label: string, body: () => Record<string, unknown>, status: number, code: string, field: string, problem: () => string];
  test.each<Case>([
    ['a missing file', () => makeImage({ kernel: missing() }), 422, 'image_check_failed', 'kernel', () => `file ${missing()} does not exist`],
    ['a directory', () => makeImage({ initrd: dir }), 422, 'image_check_failed', 'initrd', () => `${dir} is not a regular file`],
    ['a missing disk', () => makeImage({ disk: missing() }), 422, 'image_check_failed', 'disk', () => missing()],
    ['an unreachable URL', () => makeImage({ initrd: `${web.closedUrl}/initrd` }), 422, 'image_check_failed', 'initrd', () => `cannot reach ${web.closedUrl}/initrd: connect ECONNREFUSED`],
    ['an unreachable disk URL', () => makeImage({ disk: `${web.closedUrl}/disk` }), 422, 'image_check_failed', 'disk', () => 'ECONNREFUSED'],
    ['a URL answering 404', () => makeImage({ kernel: `${web.url}/gone` }), 422, 'image_check_failed', 'kernel', () => `${web.url}/gone answered 404 Not Found`],
    ['a URL that never answers', () => makeImage({ disk: `${web.url}/hang` }), 422, 'image_check_failed', 'disk', () => `${web.url}/hang did not answer within 1s`],
    ['a disk with another checksum', () => makeImage({ sha256: 'ab'.repeat(32) }), 422, 'image_check_failed', 'sha256', () => `expected ${'ab'.repeat(32)}, actual ${sha256(disk)}`],
    ['a malformed sha256', () => makeImage({ sha256: 'abc123' }), 400, 'validation_failed', 'sha256', () => 'must be 64 hexadecimal digits'],
    ['a relative path', () => makeImage({ kernel: 'vmlinuz' }), 400, 'validation_failed', 'kernel', () => 'must be an absolute path'],
    ['an ftp URL', () => makeImage({ kernel: 'ftp://host/vmlinuz' }), 400, 'validation_failed', 'kernel', () => 'must be an absolute path'],
    ['a bad name', () => makeImage({ name: 'Ubuntu 24.04' }), 400, 'validation_failed', 'name', () => 'must be 1 to 63 characters'],
    ['an unknown field', () => makeImage({ format: 'qcow2' }), 400, 'validation_failed', 'body', () => 'unknown field(s) format'],
    ['a missing field', () => ({ ...makeImage(), initrd: undefined }), 400, 'validation_failed', 'initrd', () => ''],
  ])('%s', async (_label, body, status, code, field, problem) => {
    const before = await listImages();

    const res = await app.api.post('/api/v1/images', body());

    expectError(res, status, code);
    const named = res.body.error.fields.find((f: { field: string }) => f.field === field);
    expect(named?.problem).toContain(problem());
    expect(await listImages()).toEqual(before);
  });

  test('every problem is named at once, the checksum with expected and actual apart', async () => {
    const res = await app.api.post('/api/v1/images', makeImage({ kernel: path.join(dir, 'none'), initrd: `${web.closedUrl}/x`, sha256: '0'.repeat(64) }));

    expectError(res, 422, 'image_check_failed');
    expect(res.body.error.fields.map((f: { field: string }) => f.field)).toEqual(['kernel', 'initrd', 'sha256']);
    expect(res.body.error).toMatchObject({ expected: '0'.repeat(64), actual: sha256(disk) });
  });

  test('a name taken is 409 and the image registered first stays as it was', async () => {
    const first = (await app.api.post('/api/v1/images', makeImage())).body;

    const res = await app.api.post('/api/v1/images', makeImage({ name: first.name, disk: `${web.url}/disk.img` }));

    expectError(res, 409, 'conflict');
    expect(res.body.error.field).toBe('name');
    expect((await app.api.get(`/api/v1/images/${first.name}`)).body).toEqual(first);
  });

  test('without the operator token: 401', async () => {
    expectError(await app.machine.post('/api/v1/images', makeImage()), 401, 'unauthorized');
    expectError(await app.machine.get('/api/v1/images'), 401, 'unauthorized');
  });
});

describe('reading and deleting', () => {
  test('an unknown image is 404 to show and to delete', async () => {
    expectError(await app.api.get('/api/v1/images/nothing-here'), 404, 'not_found');
    expectError(await app.api.request('DELETE', '/api/v1/images/nothing-here'), 404, 'not_found');
  });

  test('a query parameter is refused', async () => {
    expectError(await app.api.get('/api/v1/images?all=1'), 400, 'validation_failed');
  });

  /** An install row of a deploy task, as the deploy records it (with its task and queued operation). */
  async function recordInstall(install: { hostname: string; image: string; status: string }, knex: Knex = app.knex): Promise<string> {
    const taskId = randomUUID();
    await knex('tasks').insert({ id: taskId, kind: 'deploy', hostname: install.hostname, status: 'running' });
    const row: Record<string, unknown> = { task_id: taskId, ...install };
    if (await app.knex.schema.hasColumn('installs', 'operation_id')) {
      const [op] = await knex('operations')
        .insert({ task_id: taskId, hostname: install.hostname, kind: 'deploy', status: 'running', extra_vars: '{}' })
        .returning('id');
      row.operation_id = op.id;
    }
    await knex('installs').insert(row);
    return taskId;
  }

  test('an image held by a deploy recording its install cannot be deleted under it', async () => {
    const image = (await app.api.post('/api/v1/images', makeImage())).body;
    const trx = await app.knex.transaction();
    await holdImage(trx, image.name);

    const deleting = app.api.request('DELETE', `/api/v1/images/${image.name}`);
    const waiting = 'select count(*)::int as n from pg_locks where not granted and pid in (select pid from pg_stat_activity where datname = current_database())';
    await waitFor(() => app.knex.raw(waiting), (r) => r.rows[0].n > 0, { what: 'the delete to wait for the lock' });
    await recordInstall({ hostname: 'node-2.test', image: image.name, status: 'queued' }, trx);
    await trx.commit();

    expectError(await deleting, 409, 'conflict');
    expect((await app.api.get(`/api/v1/images/${image.name}`)).status).toBe(200);
  });

  test('holding an unknown image is NotFound', async () => {
    await expect(app.knex.transaction((trx) => holdImage(trx, 'never-registered'))).rejects.toBeInstanceOf(NotFound);
  });

  test('delete is refused (409) while an install of the image is queued or running, then allowed', async () => {
    const image = (await app.api.post('/api/v1/images', makeImage())).body;
    const taskId = await recordInstall({ hostname: 'node-1.test', image: image.name, status: 'queued' });
    await recordInstall({ hostname: 'node-0.test', image: image.name, status: 'failed' });

    const whileQueued = await app.api.request('DELETE', `/api/v1/images/${image.name}`);
    await app.knex('installs').where({ task_id: taskId }).update({ status: 'running' });
    const whileRunning = await app.api.request('DELETE', `/api/v1/images/${image.name}`);
    const stillThere = await app.api.get(`/api/v1/images/${image.name}`);
    await app.knex('installs').where({ task_id: taskId }).update({ status: 'succeeded' });
    const afterwards = await app.api.request('DELETE', `/api/v1/images/${image.name}`);

    expectError(whileQueued, 409, 'conflict');
    expect(whileQueued.body.error.message).toContain('node-1.test (queued)');
    expect(whileQueued.body.error.message).not.toContain('node-0.test');
    expectError(whileRunning, 409, 'conflict');
    expect(whileRunning.body.error.installs).toEqual([{ hostname: 'node-1.test', task_id: taskId, status: 'running' }]);
    expect(stillThere.body).toEqual(image);
    expect(afterwards.status).toBe(204);
    expectError(await app.api.get(`/api/v1/images/${image.name}`), 404, 'not_found');
  });
});

describe('machine endpoints', () => {
  let fileImage: { name: string };
  let urlImage: { name: string };
  beforeAll(async () => {
    fileImage = (await app.api.post('/api/v1/images', makeImage())).body;
    urlImage = (await app.api.post('/api/v1/images', makeImage({ kernel: `${web.url}/kernel`, disk: `${web.url}/disk.img` }))).body;
  });

  test('a file part is served without a token, with its Content-Length', async () => {
    const res = await fetch(`${app.url}/images/${fileImage.name}/disk`);
    const body = Buffer.from(await res.arrayBuffer());

    expect(res.status).toBe(200);
    expect(res.headers.get('content-length')).toBe(String(disk.length));
    expect(res.headers.get('content-type')).toBe('application/octet-stream');
    expect(sha256(body)).toBe(sha256(disk));
  });

  test('HEAD answers the length without a body', async () => {
    const res = await fetch(`${app.url}/images/${fileImage.name}/kernel`, { method: 'HEAD' });

    expect(res.status).toBe(200);
    expect(res.headers.get('content-length')).toBe('6');
    expect(await res.text()).toBe('');
  });

  test('a URL part is a redirect to its URL; a file part of the same image is served', async () => {
    const kernel = await fetch(`${app.url}/images/${urlImage.name}/kernel`, { redirect: 'manual' });
    const initrd = await fetch(`${app.url}/images/${urlImage.name}/initrd`, { redirect: 'manual' });
    const disk = await fetch(`${app.url}/images/${urlImage.name}/disk`, { method: 'HEAD', redirect: 'manual' });

    expect(kernel.status).toBe(302);
    expect(kernel.headers.get('location')).toBe(`${web.url}/kernel`);
    expect(initrd.status).toBe(200);
    expect(await initrd.text()).toBe('initrd');
    expect(disk.status).toBe(302);
    expect(disk.headers.get('location')).toBe(`${web.url}/disk.img`);
  });

  test.each([
    ['an unknown image', () => `/images/no-such-image/kernel`],
    ['an unknown part', () => `/images/${fileImage.name}/rootfs`],
    ['a name no image can have', () => `/images/..%2Fetc/kernel`],
  ])('%s is 404', async (_label, url) => {
    expectError(await app.machine.get(url()), 404, 'not_found');
  });

  test('a part whose file is gone is 404 naming it', async () => {
    const kernel = path.join(dir, 'vmlinuz-removed');
    fs.writeFileSync(kernel, 'kernel');
    const image = (await app.api.post('/api/v1/images', makeImage({ kernel }))).body;
    fs.rmSync(kernel);

    const res = await app.machine.get(`/images/${image.name}/kernel`);

    expectError(res, 404, 'not_found');
    expect(res.body.error.message).toContain(kernel);
  });
});

describe('verifyImage (the deploy checks the image again)', () => {
  test('an intact image is returned', async () => {
    const image = (await app.api.post('/api/v1/images', makeImage({ initrd: `${web.url}/no-head` }))).body;

    await expect(verifyImage(app.knex, image.name)).resolves.toMatchObject({ name: image.name, sha256: sha256(disk), size: disk.length });
  });

  test('an unregistered image is NotFound', async () => {
    await expect(verifyImage(app.knex, 'never-registered')).rejects.toBeInstanceOf(NotFound);
  });

  test('a disk changed since registration is named with expected and actual', async () => {
    const copy = path.join(dir, 'disk-changed.img');
    fs.writeFileSync(copy, disk);
    const image = (await app.api.post('/api/v1/images', makeImage({ disk: copy }))).body;
    fs.appendFileSync(copy, 'more');

    const err = await verifyImage(app.knex, image.name).catch((e) => e);

    expect(err).toBeInstanceOf(ImageCheckFailed);
    expect(err.status).toBe(422);
    expect(err.details.fields).toEqual([{ field: 'sha256', problem: expect.stringContaining(`expected ${sha256(disk)}`) }]);
    expect(err.details.actual).toBe(sha256(Buffer.concat([disk, Buffer.from('more')])));
  });

  test('a part gone and a URL no longer answering are both named', async () => {
    const kernel = path.join(dir, 'vmlinuz-verify');
    fs.writeFileSync(kernel, 'kernel');
    const extra = await startWebServer();
    const image = (await app.api.post('/api/v1/images', makeImage({ kernel, initrd: `${extra.url}/kernel` }))).body;
    fs.rmSync(kernel);
    await extra.stop();

    const err = await verifyImage(app.knex, image.name).catch((e) => e);

    expect(err).toBeInstanceOf(ImageCheckFailed);
    expect(err.message).toContain(`image ${image.name} cannot be installed`);
    expect(err.details.fields.map((f: { field: string }) => f.field)).toEqual(['kernel', 'initrd']);
    expect(err.details.fields[0].problem).toContain(kernel);
  });
});
