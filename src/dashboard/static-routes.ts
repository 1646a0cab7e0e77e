import path from 'node:path';
import express, { Router, type RequestHandler } from 'express';
import { Unavailable } from '../domain/errors';
import { log } from '../log';
import { ensureDashboard } from './build';

/** The page loads nothing from elsewhere, runs no inline script, and is never framed. */
const PAGE_HEADERS = {
  'content-security-policy': "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'x-frame-options': 'DENY',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache',
};

/**
 * The built dashboard under /dashboard/: index.html, checked against its sources at every page load (a
 * stale build is rebuilt first), and Vite's content-hashed assets, cached for good. The first check starts
 * with the service, so `npm start` builds a missing or stale dashboard before anyone opens it.
 */
export function staticRoutes(): Router {
  const router = Router();
  let current = ensureDashboard();
  current.catch((err: unknown) => log.error(`dashboard: not built: ${(err as Error).message}`));
  const assetHandlers = new Map<string, RequestHandler>();

  const buildDir = async (): Promise<string> => {
    try {
      return await current;
    } catch (err) {
      throw new Unavailable(`the dashboard could not be built: ${(err as Error).message}`);
    }
  };

  router.get('/', (_req, res) => res.redirect(302, '/dashboard/'));
  router.get('/dashboard', async (req, res) => {
    // Relative asset URLs and the page's own links need the trailing slash.
    if (!req.originalUrl.split('?')[0]!.endsWith('/')) {
      res.redirect(301, '/dashboard/');
      return;
    }
    current = ensureDashboard();
    const dir = await buildDir();
    res.set(PAGE_HEADERS).sendFile(path.join(dir, 'index.html'));
  });
  router.use('/dashboard/assets', async (req, res, next) => {
    const dir = path.join(await buildDir(), 'assets');
    let serve = assetHandlers.get(dir);
    if (!serve) {
      serve = express.static(dir, { immutable: true, maxAge: '365d', index: false, redirect: false });
      assetHandlers.set(dir, serve);
    }
    res.set('x-content-type-options', 'nosniff');
    serve(req, res, next);
  });
  return router;
}
