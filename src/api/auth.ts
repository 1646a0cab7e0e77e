import { createHash, timingSafeEqual } from 'node:crypto';
import type { RequestHandler } from 'express';
import { Unauthorized } from '../domain/errors';

const digest = (value: string) => createHash('sha256').update(value).digest();

/** Operator endpoints: `Authorization: Bearer <API_TOKEN>`, compared in constant time. */
export function requireOperator(token: string): RequestHandler {
  const expected = digest(token);
  return (req, _res, next) => {
    const match = /^Bearer\s+(.+)$/i.exec(req.get('authorization') ?? '');
    if (!match || !timingSafeEqual(digest(match[1]!.trim()), expected)) {
      next(new Unauthorized('missing or wrong bearer token (Authorization: Bearer <API_TOKEN>)'));
      return;
    }
    next();
  };
}
