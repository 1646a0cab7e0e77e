import fs from 'node:fs';

export default async function globalTeardown(): Promise<void> {
  await globalThis.__temporalDevServer?.stop();
  if (globalThis.__temporalDataDir) fs.rmSync(globalThis.__temporalDataDir, { recursive: true, force: true });
}
