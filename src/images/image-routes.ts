import fs from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Router } from 'express';
import type { Knex } from 'knex';
import { z } from 'zod';
import { NotFound } from '../domain/errors';
import { noQuery, parse } from '../api/validation';
import { IMAGE_PARTS, isUrl, servableFile, type ImagePart } from './image-sources';
import { deleteImage, findImage, getImage, listImages, registerImage, type ImageCheckOptions, type ImageRecord } from './image-service';

export const imageNameSchema = z
  .string()
  .regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, 'must be 1 to 63 characters of a-z, 0-9, ".", "_" and "-", starting with a letter or digit')
  .meta({ id: 'ImageName' });

/** A part is served from a file on this host or fetched by the machine from a URL. */
const location = z
  .string()
  .refine(
    (value) => {
      if (isUrl(value)) return URL.canParse(value);
      return path.isAbsolute(value);
    },
    { error: 'must be an absolute path of a file on the server or an http(s) URL' },
  )
  .meta({ description: 'An absolute path of a file on the server or an http(s) URL.' });

export const imageRegistration = z
  .strictObject({
    name: imageNameSchema,
    kernel: location,
    initrd: location,
    disk: location,
    sha256: z
      .string()
      .regex(/^[0-9a-fA-F]{64}$/, 'must be 64 hexadecimal digits (the sha256 of the disk image)')
      .transform((hex) => hex.toLowerCase()),
  })
  .meta({ id: 'ImageRequest', description: 'Each part is an absolute path on the server or an http(s) URL, checked at registration.' });

export function presentImage(image: ImageRecord) {
  return {
    name: image.name,
    kernel: image.kernel,
    initrd: image.initrd,
    disk: image.disk,
    sha256: image.sha256,
    size: image.size,
    created_at: image.createdAt.toISOString(),
  };
}

/** Operator endpoints (behind the token): register, list, show and delete images. */
export function imageRoutes(knex: Knex, options: ImageCheckOptions = {}): Router {
  const router = Router();
  const name = (raw: unknown) => parse(imageNameSchema, raw, 'name');

  router.post('/images', async (req, res) => {
    const body = parse(imageRegistration, req.body);
    const image = await registerImage(knex, body, options);
    res.status(201).location(`/api/v1/images/${image.name}`).json(presentImage(image));
  });

  router.get('/images', async (req, res) => {
    parse(noQuery, req.query, 'query');
    res.json((await listImages(knex)).map(presentImage));
  });

  router.get('/images/:name', async (req, res) => {
    parse(noQuery, req.query, 'query');
    res.json(presentImage(await getImage(knex, name(req.params.name))));
  });

  router.delete('/images/:name', async (req, res) => {
    await deleteImage(knex, name(req.params.name));
    res.status(204).end();
  });

  return router;
}

/**
 * Machine endpoints (no token): what iPXE and the installer fetch. A file-backed part is streamed with
 * its length (HEAD answers the headers alone); a URL-backed part is a redirect to its URL.
 */
export function imageFileRoutes(knex: Knex): Router {
  const router = Router();

  // Express answers HEAD with the GET route; the body is left out below.
  router.get('/images/:name/:part', async (req, res) => {
    const { name, part } = req.params;
    const image = imageNameSchema.safeParse(name).success ? await findImage(knex, name) : undefined;
    if (!image) throw new NotFound(`no image ${name}`, { image: name });
    if (!(IMAGE_PARTS as readonly string[]).includes(part)) {
      throw new NotFound(`an image has no part ${part}; its parts are ${IMAGE_PARTS.join(', ')}`, { image: name, part });
    }
    const source = image[part as ImagePart];
    if (isUrl(source)) {
      res.redirect(302, source);
      return;
    }
    const gone = () => new NotFound(`the ${part} of image ${name} is gone from the server (${source})`, { image: name, part });
    // Checked before opening: opening a FIFO put in the file's place would block.
    if (!(await servableFile(source))) throw gone();
    const file = await fs.promises.open(source, 'r').catch(() => undefined);
    if (!file) throw gone();
    try {
      // The length of what is opened, not of what the path named a moment before.
      const stat = await file.stat();
      res.status(200).set({
        'content-type': 'application/octet-stream',
        'content-length': String(stat.size),
        'last-modified': stat.mtime.toUTCString(),
      });
      if (req.method === 'HEAD') {
        res.end();
        return;
      }
      await pipeline(file.createReadStream({ autoClose: false }), res);
    } catch {
      // The machine went away mid-transfer: the response is cut short, which its client sees as a
      // short read against Content-Length. Nothing is left to answer.
      res.destroy();
    } finally {
      await file.close().catch(() => undefined);
    }
  });

  return router;
}
