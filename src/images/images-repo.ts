import type { Knex } from 'knex';
import { Conflict, NotFound } from '../domain/errors';

export interface ImageRecord {
  name: string;
  /** Each part is an absolute path on the service's host or an http(s) URL. */
  kernel: string;
  initrd: string;
  disk: string;
  /** Of the disk image, lower-case hex. */
  sha256: string;
  /** Bytes of the disk image. */
  size: number;
  createdAt: Date;
}

interface ImageRow {
  name: string;
  kernel: string;
  initrd: string;
  disk: string;
  sha256: string;
  size: string | number | null;
  created_at: Date;
}

/** Installs in these statuses hold their image: it cannot be deleted under them. */
export const HOLDING_STATUSES = ['queued', 'running'] as const;

function toImage(row: ImageRow): ImageRecord {
  return {
    name: row.name,
    kernel: row.kernel,
    initrd: row.initrd,
    disk: row.disk,
    sha256: row.sha256,
    // bigint comes back from pg as a string; a disk image is far below 2^53 bytes.
    size: Number(row.size ?? 0),
    createdAt: row.created_at,
  };
}

export async function findImage(knex: Knex, name: string): Promise<ImageRecord | undefined> {
  const row = await knex<ImageRow>('images').where({ name }).first();
  return row ? toImage(row) : undefined;
}

export async function listImages(knex: Knex): Promise<ImageRecord[]> {
  return (await knex<ImageRow>('images').orderBy('name')).map(toImage);
}

/** Stores an image; a name already taken is a conflict (also when another request took it meanwhile). */
export async function insertImage(knex: Knex, image: Omit<ImageRecord, 'createdAt'>): Promise<ImageRecord> {
  const [row] = await knex<ImageRow>('images').insert(image).onConflict('name').ignore().returning('*');
  if (!row) throw new Conflict(`an image named ${image.name} exists already`, { field: 'name' });
  return toImage(row);
}

/**
 * Locks an image against deletion until the transaction ends, and returns it: a deploy that records
 * an install of the image in the same transaction can never be left with the image deleted under it.
 */
export async function holdImage(trx: Knex.Transaction, name: string): Promise<ImageRecord> {
  const row = await trx<ImageRow>('images').where({ name }).forKeyShare().first();
  if (!row) throw new NotFound(`no image ${name}`, { image: name });
  return toImage(row);
}

/** Deletes an image no queued or running install uses; otherwise a conflict naming those installs. */
export async function deleteImage(knex: Knex, name: string): Promise<void> {
  await knex.transaction(async (trx) => {
    const row = await trx('images').where({ name }).forUpdate().first();
    if (!row) throw new NotFound(`no image ${name}`, { image: name });
    const users: { hostname: string; task_id: string; status: string }[] = await trx('installs')
      .select('hostname', 'task_id', 'status')
      .where({ image: name })
      .whereIn('status', HOLDING_STATUSES)
      .orderBy('hostname');
    if (users.length > 0) {
      throw new Conflict(`image ${name} is in use by ${users.length} install(s): ${users.map((u) => `${u.hostname} (${u.status})`).join(', ')}`, {
        image: name,
        installs: users,
      });
    }
    await trx('images').where({ name }).delete();
  });
}
