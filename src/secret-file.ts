import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';

/**
 * The content of a secret file (mode 0600) in DATA_DIR: read when it exists, otherwise made once with
 * `make`. Processes starting together on a fresh DATA_DIR (an API and a worker) all end with the same
 * content: each writes a complete draft of its own and links it into place; link refuses an existing
 * name, so the first wins, and nobody can read a file that is still being written.
 */
export async function readOrCreateSecretFile(file: string, make: () => string): Promise<string> {
  const existing = await readIfPresent(file);
  if (existing !== undefined) return existing;
  const content = make();
  const draft = `${file}.${process.pid}.${randomBytes(6).toString('hex')}`;
  await fs.writeFile(draft, content, { mode: 0o600, flag: 'wx' });
  const lostTheRace = (err: unknown) => {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  };
  try {
    await fs.link(draft, file).catch(async (err: NodeJS.ErrnoException) => {
      // A file system without hard links: wx on the name itself still lets only one process create it.
      if (err.code === 'EPERM' || err.code === 'ENOTSUP') await fs.writeFile(file, content, { mode: 0o600, flag: 'wx' }).catch(lostTheRace);
      else lostTheRace(err);
    });
  } finally {
    await fs.rm(draft, { force: true });
  }
  return fs.readFile(file, 'utf8');
}

async function readIfPresent(file: string): Promise<string | undefined> {
  return fs.readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
}
