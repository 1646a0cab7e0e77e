import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { DomainError } from '../domain/errors';

/** The parts of an image: the installer (kernel and initramfs) and the disk image it writes. */
export const IMAGE_PARTS = ['kernel', 'initrd', 'disk'] as const;
export type ImagePart = (typeof IMAGE_PARTS)[number];

/** How long a URL may keep the service waiting: to answer, and between two chunks of a body. */
export const DEFAULT_SOURCE_TIMEOUT_MS = 5_000;

export type Problem = { field: string; problem: string };

/**
 * An image whose parts are not what the request says: a file that is not there, a URL that does not
 * answer, a disk whose checksum differs. 422 with every problem named by field, as a 400 names them.
 * Its constructor is (message, details), so it can be rebuilt by name after crossing a Temporal boundary.
 */
export class ImageCheckFailed extends DomainError {
  override readonly status = 422;
  override readonly code = 'image_check_failed';

  static of(what: string, fields: Problem[], extra: Record<string, unknown> = {}): ImageCheckFailed {
    return new ImageCheckFailed(`${what}: ${fields.map((f) => `${f.field} ${f.problem}`).join('; ')}`, { fields, ...extra });
  }
}

export const isUrl = (location: string) => /^https?:\/\//i.test(location);

/** A part the service could not use, with the sentence that says why. */
class SourceProblem extends Error {}

function describeFetchError(url: string, err: unknown, timeoutMs: number): string {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  if (e.name === 'TimeoutError' || e.name === 'AbortError') return `${url} did not answer within ${timeoutMs / 1000}s`;
  return `cannot reach ${url}: ${e.cause?.message ?? e.cause?.code ?? e.message}`;
}

/** Rejects with the problem when the path is not a regular file the service can open. */
async function checkFile(path: string): Promise<number> {
  let stat: fs.Stats;
  try {
    stat = await fs.promises.stat(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new SourceProblem(code === 'ENOENT' ? `file ${path} does not exist` : `file ${path} cannot be read: ${code ?? (err as Error).message}`);
  }
  // Checked before opening: opening a FIFO would block until something writes to it.
  if (!stat.isFile()) throw new SourceProblem(`${path} is not a regular file`);
  try {
    await (await fs.promises.open(path, 'r')).close();
  } catch (err) {
    throw new SourceProblem(`file ${path} cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return stat.size;
}

/** A request that must answer 2xx within the timeout; the body is the caller's to read or cancel. */
async function request(url: string, method: 'GET' | 'HEAD', signal: AbortSignal, timeoutMs: number): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(url, { method, signal, redirect: 'follow' });
  } catch (err) {
    throw new SourceProblem(describeFetchError(url, err, timeoutMs));
  }
  if (!res.ok) {
    await res.body?.cancel().catch(() => undefined);
    throw new SourceProblem(`${url} answered ${res.status}${res.statusText ? ` ${res.statusText}` : ''}`);
  }
  return res;
}

async function checkUrl(url: string, timeoutMs: number): Promise<void> {
  const head = await request(url, 'HEAD', AbortSignal.timeout(timeoutMs), timeoutMs).catch((err) => {
    // Some servers refuse HEAD but serve GET: only a refused method is worth a second try.
    if (err instanceof SourceProblem && / answered (405|501)/.test(err.message)) return undefined;
    throw err;
  });
  if (head) return;
  const get = await request(url, 'GET', AbortSignal.timeout(timeoutMs), timeoutMs);
  await get.body?.cancel().catch(() => undefined);
}

/** The problem with a part (a file or a URL that does not serve it), or null when it can be served. */
export async function checkPart(location: string, timeoutMs = DEFAULT_SOURCE_TIMEOUT_MS): Promise<string | null> {
  try {
    if (isUrl(location)) await checkUrl(location, timeoutMs);
    else await checkFile(location);
    return null;
  } catch (err) {
    if (err instanceof SourceProblem) return err.message;
    throw err;
  }
}

export interface Digest {
  sha256: string;
  size: number;
}

/** Hashes a file as a stream: a disk image is never held in memory. */
async function hashFile(path: string): Promise<Digest> {
  await checkFile(path);
  const hash = createHash('sha256');
  let size = 0;
  try {
    for await (const chunk of fs.createReadStream(path)) {
      hash.update(chunk as Buffer);
      size += (chunk as Buffer).length;
    }
  } catch (err) {
    throw new SourceProblem(`file ${path} could not be read to the end: ${(err as Error).message}`);
  }
  return { sha256: hash.digest('hex'), size };
}

/**
 * Hashes what a URL serves as it arrives. The timeout bounds the wait for the answer and every pause
 * between two chunks, not the whole download: a large image over a slow link is fine, a stalled one is not.
 */
async function hashUrl(url: string, timeoutMs: number): Promise<Digest> {
  const controller = new AbortController();
  let timer = setTimeout(() => controller.abort(new DOMException('stalled', 'TimeoutError')), timeoutMs);
  const rearm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => controller.abort(new DOMException('stalled', 'TimeoutError')), timeoutMs);
  };
  try {
    const res = await request(url, 'GET', controller.signal, timeoutMs);
    const hash = createHash('sha256');
    let size = 0;
    try {
      for await (const chunk of res.body ?? []) {
        rearm();
        hash.update(chunk);
        size += chunk.length;
      }
    } catch (err) {
      const stalled = controller.signal.aborted;
      throw new SourceProblem(stalled ? `${url} stopped sending for ${timeoutMs / 1000}s after ${size} bytes` : `${url} broke off after ${size} bytes: ${(err as Error).message}`);
    }
    return { sha256: hash.digest('hex'), size };
  } finally {
    clearTimeout(timer);
  }
}

/** The sha256 and size of a part, or the problem that kept it from being read. */
export async function hashPart(location: string, timeoutMs = DEFAULT_SOURCE_TIMEOUT_MS): Promise<Digest | { problem: string }> {
  try {
    return isUrl(location) ? await hashUrl(location, timeoutMs) : await hashFile(location);
  } catch (err) {
    if (err instanceof SourceProblem) return { problem: err.message };
    throw err;
  }
}

/** A file-backed part as it can be served now: its size, or null when it is gone. */
export async function servableFile(path: string): Promise<{ size: number; mtime: Date } | null> {
  try {
    const stat = await fs.promises.stat(path);
    return stat.isFile() ? { size: stat.size, mtime: stat.mtime } : null;
  } catch {
    return null;
  }
}
