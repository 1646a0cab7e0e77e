import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import express from 'express';
import type { Knex } from 'knex';
import { requireOperator } from '../../src/api/auth';
import { errorHandler, notFoundHandler } from '../../src/api/errors-middleware';
import { refuseUnstorableText } from '../../src/api/text-safety';
import { openDatabase } from '../../src/db/database';
import { createTestDatabase } from '../../src/dev/scratch-database';
import { imageFileRoutes, imageRoutes } from '../../src/images/image-routes';
import { HttpClient } from './http-client';

export interface ImagesApp {
  url: string;
  token: string;
  knex: Knex;
  /** With the operator token. */
  api: HttpClient;
  /** Without credentials, as a PXE-booting machine asks. */
  machine: HttpClient;
  stop(): Promise<void>;
}

/**
 * The image routers as the service mounts them (operator routes under /api/v1 behind the token, machine
 * routes at the root), on a scratch database with the service's migrations, JSON parser and error
 * middleware, for as long as the routers are not part of createApp.
 */
export async function startImagesApp(options: { timeoutMs?: number } = {}): Promise<ImagesApp> {
  const database = await createTestDatabase();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'nl-images-'));
  const db = await openDatabase({ databaseUrl: database.url, dataDir });
  const token = randomBytes(16).toString('hex');
  const app = express();
  app.use(express.json());
  app.use(refuseUnstorableText);
  app.use(imageFileRoutes(db.knex));
  app.use('/api/v1', requireOperator(token));
  app.use('/api/v1', imageRoutes(db.knex, { timeoutMs: options.timeoutMs ?? 1_000 }));
  app.use(notFoundHandler);
  app.use(errorHandler);
  const server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    token,
    knex: db.knex,
    api: new HttpClient(url, token),
    machine: new HttpClient(url),
    async stop() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await db.close();
      await database.drop();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
