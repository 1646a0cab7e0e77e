import type { ErrorRequestHandler, RequestHandler } from 'express';
import { isDatabaseUnavailable } from '../db/unavailable';
import { DomainError, Unavailable } from '../domain/errors';
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
  if (isDatabaseUnavailable(err)) {
    // The cause names the server's address: the log gets it, the caller does not need it.
    log.warn(`${req.method} ${req.originalUrl}: database unavailable: ${(err as Error).message}`);
    err = new Unavailable('the database is not answering; nothing was changed by this request; try again');
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
