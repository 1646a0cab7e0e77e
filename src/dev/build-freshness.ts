import { promises as fs } from 'node:fs';
import path from 'node:path';

/** The newest modification time of any file under dir (0 for an empty tree). */
export async function newestMtime(dir: string): Promise<number> {
  let newest = 0;
  for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    const mtime = entry.isDirectory() ? await newestMtime(full) : (await fs.stat(full)).mtimeMs;
    newest = Math.max(newest, mtime);
  }
  return newest;
}

/** True when `built` exists and is at least as new as every file under `sources`: a build made from them. */
export async function builtFromLatest(built: string, sources: string): Promise<boolean> {
  const builtAt = await fs.stat(built).then(
    (s) => s.mtimeMs,
    () => undefined,
  );
  return builtAt !== undefined && builtAt >= (await newestMtime(sources));
}
