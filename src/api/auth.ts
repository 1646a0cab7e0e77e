import { createHash, timingSafeEqual } from 'node:crypto';
import type { Request, RequestHandler } from 'express';
import { sessionIdOf, sessionValid } from '../dashboard/sessions';
import { CsrfRefused, Unauthorized } from '../domain/errors';

const digest = (value: string) => createHash('sha256').update(value).digest();

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * A browser sends the session cookie with any request to this host, whoever's page asks. SameSite=Strict
 * keeps other sites' requests from carrying it; beside that, a state-changing request must carry a header
 * that only a same-origin script can set without a CORS preflight (which this service never grants), and
 * an Origin, when the browser sends one, must be this host.
 */
function csrfProblem(req: Request): string | undefined {
  if (SAFE_METHODS.has(req.method)) return undefined;
  if (!req.get('x-requested-with')) return 'a request authenticated by the session cookie that changes state must carry an X-Requested-With header';
  const origin = req.get('origin');
  if (origin !== undefined) {
    let host: string | undefined;
    try {
      host = new URL(origin).host;
    } catch {
      host = undefined;
    }
    if (host !== req.get('host')) return `origin ${origin} is not this service`;
  }
  return undefined;
}

/**
 * Operator endpoints: `Authorization: Bearer <API_TOKEN>`, compared in constant time, or the dashboard's
 * session cookie (a session opened with that token; see src/dashboard/sessions.ts). A bearer header, when
 * present, decides alone. `res.locals.operatorSession` names the session of a cookie-authenticated request.
 */
export function requireOperator(token: string): RequestHandler {
  const expected = digest(token);
  return (req, res, next) => {
    const header = req.get('authorization');
    if (header !== undefined) {
      const match = /^Bearer\s+(.+)$/i.exec(header);
      if (!match || !timingSafeEqual(digest(match[1]!.trim()), expected)) {
        next(new Unauthorized('missing or wrong bearer token (Authorization: Bearer <API_TOKEN>)'));
        return;
      }
      next();
      return;
    }
    const session = sessionIdOf(req);
    if (session === undefined || !sessionValid(session, expected)) {
      const what = session === undefined ? 'missing or wrong bearer token (Authorization: Bearer <API_TOKEN>)' : 'the dashboard session has ended; log in again';
      next(new Unauthorized(what));
      return;
    }
    const problem = csrfProblem(req);
    if (problem) {
      next(new CsrfRefused(problem));
      return;
    }
    res.locals.operatorSession = session;
    next();
  };
}
