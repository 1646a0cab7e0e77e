import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { ConfigError } from '../config';
import { readOrCreateSecretFile } from '../secret-file';
import { decodeSecretsKey, SECRETS_KEY_BYTES } from './secret-box';

export const SECRETS_KEY_FILE = 'secrets.key';

/**
 * SECRETS_KEY when set; otherwise DATA_DIR/secrets.key, made once (mode 0600) and reused. The key is
 * kept apart from the database, so a dump or a backup of the database alone does not reveal a password.
 */
export async function resolveSecretsKey(configured: Buffer | undefined, dataDir: string): Promise<{ key: Buffer; source: string }> {
  if (configured) return { key: configured, source: 'SECRETS_KEY' };
  const file = path.join(dataDir, SECRETS_KEY_FILE);
  const text = await readOrCreateSecretFile(file, () => `${randomBytes(SECRETS_KEY_BYTES).toString('base64')}\n`);
  try {
    return { key: decodeSecretsKey(text.trim()), source: file };
  } catch (err) {
    throw new ConfigError(`${file} ${(err as Error).message}; restore the key the node passwords were written with, or set SECRETS_KEY`);
  }
}
