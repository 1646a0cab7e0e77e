import fs from 'node:fs';

export default async function globalTeardown(): Promise<void> {
  await globalThis.__temporalDevServer?.stop();
  await globalThis.__temporalCluster?.stop();
  if (globalThis.__temporalDataDir) fs.rmSync(globalThis.__temporalDataDir, { recursive: true, force: true });
}
