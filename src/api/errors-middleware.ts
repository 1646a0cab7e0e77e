import type { ErrorRequestHandler, RequestHandler } from 'express';
import { DomainError } from '../domain/errors';
import { log } from '../log';

/** Unknown routes answer like every other error: JSON naming what was asked for. */
export const notFoundHandler: RequestHandler = (req, res) => {
  res.status(404).json({ error: { code: 'not_found', message: `no route ${req.method} ${req.path}` } });
};

/** Turns every error into a structured JSON body; a client mistake is never a 500. */
export const errorHandler: ErrorRequestHandler = (err, req, res, next) => {
  if (res.headersSent) {
    next(err);
    return;
  }
  if (err instanceof DomainError) {
    res.status(err.status).json({ error: { code: err.code, message: err.message, ...err.details } });
    return;
  }
  // body-parser's errors carry a status and a type: malformed JSON, too large, wrong charset.
  const status = typeof err?.status === 'number' ? err.status : typeof err?.statusCode === 'number' ? err.statusCode : 500;
  if (status >= 400 && status < 500) {
    const message = err.type === 'entity.parse.failed' ? `body is not valid JSON: ${err.message}` : String(err.message ?? 'bad request');
    res.status(status).json({ error: { code: err.type === 'entity.parse.failed' ? 'malformed_json' : 'bad_request', message, field: 'body' } });
    return;
  }
  log.error(`${req.method} ${req.originalUrl}: ${err instanceof Error ? err.stack : String(err)}`);
  res.status(500).json({ error: { code: 'internal_error', message: 'internal error; see the service log' } });
};
