import { createHash, timingSafeEqual } from 'node:crypto';
import { Router, type RequestHandler } from 'express';
import { z } from 'zod';
import { CsrfRefused } from '../domain/errors';
import { noQuery, parse } from '../api/validation';
import { Unauthorized } from '../domain/errors';
import { clearSessionCookie, closeSession, openSession, sessionIdOf, setSessionCookie } from './sessions';

const digest = (value: string) => createHash('sha256').update(value).digest();

export const loginSchema = z.strictObject({ token: z.string().min(1).max(4096) });

/**
 * Log-in with the operator token: POST checks it (in constant time, as the bearer check does) and sets
 * the session cookie; the token itself is never stored, echoed or put into the page.
 */
export function sessionRoutes(apiToken: string, operator: RequestHandler): Router {
  const router = Router();
  const expected = digest(apiToken);

  router.post('/api/v1/session', (req, res) => {
    const { token } = parse(loginSchema, req.body);
    if (!timingSafeEqual(digest(token), expected)) throw new Unauthorized('wrong token');
    const session = openSession(apiToken);
    setSessionCookie(req, res, session.id);
    res.status(201).json({ expires_at: session.expiresAt.toISOString() });
  });

  router.get('/api/v1/session', operator, (req, res) => {
    parse(noQuery, req.query, 'query');
    res.json({ authenticated: true, via: res.locals.operatorSession ? 'session' : 'bearer' });
  });

  // Ends the session if there is one; answers 204 either way, so a stale tab can always log out.
  router.delete('/api/v1/session', (req, res) => {
    if (!req.get('x-requested-with')) throw new CsrfRefused('log-out must carry an X-Requested-With header');
    const id = sessionIdOf(req);
    if (id !== undefined) closeSession(id);
    clearSessionCookie(req, res);
    res.status(204).end();
  });

  return router;
}
