import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';

/** API_TOKEN when set; otherwise a token generated once into DATA_DIR/api-token (mode 0600) and reused. */
export async function resolveApiToken(configured: string | undefined, dataDir: string): Promise<{ token: string; file?: string }> {
  if (configured) return { token: configured };
  const file = path.join(dataDir, 'api-token');
  const existing = (await fs.readFile(file, 'utf8').catch(() => '')).trim();
  if (existing) return { token: existing, file };
  const token = randomBytes(24).toString('base64url');
  await fs.writeFile(file, `${token}\n`, { mode: 0o600, flag: 'wx' }).catch(async (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EEXIST') throw err;
  });
  return { token: (await fs.readFile(file, 'utf8')).trim(), file };
}
