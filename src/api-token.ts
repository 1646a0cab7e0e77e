import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { readOrCreateSecretFile } from './secret-file';

/** API_TOKEN when set; otherwise a token generated once into DATA_DIR/api-token (mode 0600) and reused. */
export async function resolveApiToken(configured: string | undefined, dataDir: string): Promise<{ token: string; file?: string }> {
  if (configured) return { token: configured };
  const file = path.join(dataDir, 'api-token');
  // Hex, not base64url: a token that begins with '-' is read as an option by nodectl and other CLIs
  // (`--token -x3F…`), which made one start in 64 unusable from the command line.
  const token = (await readOrCreateSecretFile(file, () => `${randomBytes(24).toString('hex')}\n`)).trim();
  return { token, file };
}
