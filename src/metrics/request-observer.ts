import { randomUUID } from 'node:crypto';
import type { Request, RequestHandler } from 'express';
import { log, withLogContext } from '../log';
import { httpRequestDuration, httpRequests } from './registry';

/** An incoming x-request-id is kept when it is a plain token (a proxy's or a client's); anything else is replaced. */
const WELL_FORMED_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

/** The label of requests no route answered: unknown paths, and requests refused before routing. */
export const UNMATCHED = 'unmatched';

const PATTERN = Symbol('route pattern');
const ROUTE = Symbol('route');
const patched = new WeakSet<object>();

/**
 * The route pattern a request matched (`/api/v1/nodes/:hostname`), never its URL, so the label set stays
 * bounded. Express sets req.route when a route matches, while req.baseUrl is still the router's mount
 * path (it is restored once an error leaves the router), so the pattern is taken at that moment: by an
 * accessor on the app's request prototype, defined once. (An accessor defined on each request object
 * instead turned every request into a slow-mode object: the benchmark's accepts took half as long again.)
 */
function watchRoutes(req: Request): void {
  const proto = Object.getPrototypeOf(req) as object;
  if (patched.has(proto)) return;
  patched.add(proto);
  Object.defineProperty(proto, 'route', {
    configurable: true,
    get(this: Record<symbol, unknown>) {
      return this[ROUTE];
    },
    set(this: Request & Record<symbol, unknown>, value: { path?: unknown } | undefined) {
      this[ROUTE] = value;
      if (value?.path !== undefined) this[PATTERN] = `${this.baseUrl}${String(value.path)}`;
    },
  });
}

function patternOf(req: Request): string {
  return ((req as unknown as Record<symbol, unknown>)[PATTERN] as string | undefined) ?? UNMATCHED;
}

/**
 * Observes every request, refused and unknown ones too (this runs first): a request id (honoured from
 * x-request-id, else made, and returned in the response header) carried by every line logged while the
 * request is handled, a count and a latency by route pattern and status, and one log line at the end.
 * Agents' signed calls and successful reads are logged at debug: at 100,000 nodes they are the bulk.
 */
export function observeRequests(): RequestHandler {
  return (req, res, next) => {
    const started = performance.now();
    const incoming = req.get('x-request-id');
    const requestId = incoming && WELL_FORMED_ID.test(incoming) ? incoming : randomUUID();
    res.setHeader('x-request-id', requestId);
    watchRoutes(req);
    res.once('close', () => {
      const seconds = (performance.now() - started) / 1000;
      const labels = { method: req.method, route: patternOf(req), status: String(res.statusCode) };
      httpRequests.inc(labels);
      httpRequestDuration.observe(labels, seconds);
      const quiet = req.get('x-node-signature') !== undefined || ((req.method === 'GET' || req.method === 'HEAD') && res.statusCode < 400);
      const level = res.statusCode >= 500 ? 'warn' : quiet ? 'debug' : 'info';
      log[level]('request', {
        requestId,
        method: req.method,
        route: labels.route,
        // The router rewrites req.url (and so req.path) under its mount path; the query is left out.
        path: req.originalUrl.split('?')[0],
        status: res.statusCode,
        ms: Math.round(seconds * 1000),
        ...(res.writableFinished ? {} : { aborted: true }),
      });
    });
    withLogContext({ requestId }, next);
  };
}
