import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { readOrCreateSecretFile } from './secret-file';

/** API_TOKEN when set; otherwise a token generated once into DATA_DIR/api-token (mode 0600) and reused. */
export async function resolveApiToken(configured: string | undefined, dataDir: string): Promise<{ token: string; file?: string }> {
  if (configured) return { token: configured };
  const file = path.join(dataDir, 'api-token');
  const token = (await readOrCreateSecretFile(file, () => `${randomBytes(24).toString('base64url')}\n`)).trim();
  return { token, file };
}
