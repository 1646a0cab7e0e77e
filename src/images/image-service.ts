import type { Knex } from 'knex';
import { Conflict, NotFound } from '../domain/errors';
import { checkPart, DEFAULT_SOURCE_TIMEOUT_MS, hashPart, ImageCheckFailed, type Problem } from './image-sources';
import { findImage, insertImage, type ImageRecord } from './images-repo';

export interface ImageRequest {
  name: string;
  kernel: string;
  initrd: string;
  disk: string;
  /** Lower-case hex. */
  sha256: string;
}

export interface ImageCheckOptions {
  /** The longest a URL may keep the service waiting (to answer, or between two chunks). */
  timeoutMs?: number;
}

interface Inspection {
  problems: Problem[];
  /** Of the disk as read now; absent when it could not be read. */
  digest?: { sha256: string; size: number };
}

/**
 * Checks every part at once, so one answer names all that is wrong: kernel and initrd must be
 * servable, the disk is read to the end and its sha256 compared with the expected one.
 */
async function inspect(parts: Omit<ImageRequest, 'name'>, timeoutMs: number): Promise<Inspection> {
  const [kernel, initrd, disk] = await Promise.all([checkPart(parts.kernel, timeoutMs), checkPart(parts.initrd, timeoutMs), hashPart(parts.disk, timeoutMs)]);
  const problems: Problem[] = [];
  if (kernel) problems.push({ field: 'kernel', problem: kernel });
  if (initrd) problems.push({ field: 'initrd', problem: initrd });
  if ('problem' in disk) {
    problems.push({ field: 'disk', problem: disk.problem });
    return { problems };
  }
  if (disk.sha256 !== parts.sha256) {
    problems.push({ field: 'sha256', problem: `does not match the disk: expected ${parts.sha256}, actual ${disk.sha256} (${disk.size} bytes read from ${parts.disk})` });
  }
  return { problems, digest: disk };
}

function mismatch(expected: string, digest: Inspection['digest']) {
  return digest && digest.sha256 !== expected ? { expected, actual: digest.sha256 } : {};
}

/** Registers an image once its parts are checked and its disk hashed; nothing is stored otherwise. */
export async function registerImage(knex: Knex, request: ImageRequest, options: ImageCheckOptions = {}): Promise<ImageRecord> {
  // The cheap refusal first: hashing a disk of gigabytes for a name that is taken would be wasted.
  if (await findImage(knex, request.name)) throw new Conflict(`an image named ${request.name} exists already`, { field: 'name' });
  const { problems, digest } = await inspect(request, options.timeoutMs ?? DEFAULT_SOURCE_TIMEOUT_MS);
  if (problems.length > 0) throw ImageCheckFailed.of(`image ${request.name} refused`, problems, mismatch(request.sha256, digest));
  return insertImage(knex, { ...request, size: digest!.size });
}

/** The image, or NotFound naming it. */
export async function getImage(knex: Knex, name: string): Promise<ImageRecord> {
  const image = await findImage(knex, name);
  if (!image) throw new NotFound(`no image ${name}`, { image: name });
  return image;
}

/**
 * What a deploy checks before it touches a node: the image is registered, its files are still there,
 * its URLs still answer, and its disk still hashes to the registered sha256 (read again in full, so
 * call it once per deploy, not once per node). Throws NotFound, or ImageCheckFailed naming each problem.
 */
export async function verifyImage(knex: Knex, name: string, options: ImageCheckOptions = {}): Promise<ImageRecord> {
  const image = await getImage(knex, name);
  const { problems, digest } = await inspect(image, options.timeoutMs ?? DEFAULT_SOURCE_TIMEOUT_MS);
  if (digest && problems.length === 0 && digest.size !== image.size) {
    problems.push({ field: 'disk', problem: `is ${digest.size} bytes, registered with ${image.size}` });
  }
  if (problems.length > 0) throw ImageCheckFailed.of(`image ${name} cannot be installed`, problems, { image: name, ...mismatch(image.sha256, digest) });
  return image;
}

export { deleteImage, findImage, holdImage, listImages, type ImageRecord } from './images-repo';
