import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { ConfigError } from '../config';
import { decodeSecretsKey, SECRETS_KEY_BYTES } from './secret-box';

export const SECRETS_KEY_FILE = 'secrets.key';

/**
 * SECRETS_KEY when set; otherwise DATA_DIR/secrets.key, made once (mode 0600) and reused. The key is
 * kept apart from the database, so a dump or a backup of the database alone does not reveal a password.
 */
export async function resolveSecretsKey(configured: Buffer | undefined, dataDir: string): Promise<{ key: Buffer; source: string }> {
  if (configured) return { key: configured, source: 'SECRETS_KEY' };
  const file = path.join(dataDir, SECRETS_KEY_FILE);
  const text = (await readIfPresent(file)) ?? (await publishNewKey(file));
  try {
    return { key: decodeSecretsKey(text.trim()), source: file };
  } catch (err) {
    throw new ConfigError(`${file} ${(err as Error).message}; restore the key the node passwords were written with, or set SECRETS_KEY`);
  }
}

async function readIfPresent(file: string): Promise<string | undefined> {
  return fs.readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
}

/**
 * Two processes starting on a fresh DATA_DIR must end with one key. Each writes a complete key to a file
 * of its own (wx, 0600) and links it into place; link refuses an existing name, so the first wins, and
 * no process can read a key file that is still being written.
 */
async function publishNewKey(file: string): Promise<string> {
  const key = `${randomBytes(SECRETS_KEY_BYTES).toString('base64')}\n`;
  const draft = `${file}.${process.pid}.${randomBytes(6).toString('hex')}`;
  await fs.writeFile(draft, key, { mode: 0o600, flag: 'wx' });
  const exists = (err: unknown) => {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  };
  try {
    await fs.link(draft, file).catch(async (err: NodeJS.ErrnoException) => {
      // A file system without hard links: wx on the name itself still lets only one process create it.
      if (err.code === 'EPERM' || err.code === 'ENOTSUP') await fs.writeFile(file, key, { mode: 0o600, flag: 'wx' }).catch(exists);
      else exists(err);
    });
  } finally {
    await fs.rm(draft, { force: true });
  }
  return fs.readFile(file, 'utf8');
}
