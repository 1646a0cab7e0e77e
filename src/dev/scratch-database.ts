import { randomBytes } from 'node:crypto';
import net from 'node:net';
import knexFactory from 'knex';

const ADMIN_URL = process.env.TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export function postgresAvailable(): Promise<boolean> {
  const url = new URL(ADMIN_URL);
  return new Promise((resolve) => {
    const socket = net.connect({ host: url.hostname, port: Number(url.port || 5432) });
    socket.setTimeout(1000);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

/** A throwaway database of its own (a test file's, a benchmark run's) on the real PostgreSQL server, dropped afterwards. */
export async function createTestDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `nl_test_${randomBytes(6).toString('hex')}`;
  const admin = knexFactory({ client: 'pg', connection: ADMIN_URL, pool: { min: 0, max: 1 } });
  await admin.raw(`create database ${name}`);
  await admin.destroy();
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const cleaner = knexFactory({ client: 'pg', connection: ADMIN_URL, pool: { min: 0, max: 1 } });
      await cleaner.raw(`drop database if exists ${name} with (force)`);
      await cleaner.destroy();
    },
  };
}
