import { z } from 'zod';
import type { ZodOpenApiOperationObject, ZodOpenApiRequestBodyObject, ZodOpenApiResponseObject, ZodOpenApiResponsesObject } from 'zod-openapi';
import { SIGNATURE_HEADERS } from '../../identity/request-signature';
import { errorSchema } from './responses';

/** Pieces every operation of the document is built from, so each path reads as what it answers. */

export function jsonBody(schema: z.ZodType, required = true): ZodOpenApiRequestBodyObject {
  return { required, content: { 'application/json': { schema } } };
}

export function ok(description: string, schema: z.ZodType): ZodOpenApiResponseObject {
  return { description, content: { 'application/json': { schema } } };
}

/** 201 or 202: the answer names what was made or the task that follows the request. */
export function withLocation(description: string, schema: z.ZodType, location: string): ZodOpenApiResponseObject {
  return {
    ...ok(description, schema),
    headers: z.object({ location: z.string().meta({ description: location }) }),
  };
}

const UNAVAILABLE = 'The database or Temporal did not answer in time; nothing was changed.';

export const noContent: ZodOpenApiResponseObject = { description: 'Done; no body.' };

/** Error answers, each with the endpoint's own reasons; the body is always the Error schema. */
export function refusals(reasons: Partial<Record<400 | 401 | 403 | 404 | 409 | 422 | 503, string>>): ZodOpenApiResponsesObject {
  return Object.fromEntries(Object.entries(reasons).map(([status, description]) => [status, ok(description, errorSchema)]));
}

/**
 * An operator endpoint: the bearer token or the dashboard's session cookie (the document's default
 * security), and the answers any of them can give, whatever it does (a query or path that is not valid
 * UTF-8, an unknown query parameter: 400).
 */
export function operator(operation: ZodOpenApiOperationObject): ZodOpenApiOperationObject {
  const generic = refusals({
    400: 'Invalid input; `fields` names every offending field.',
    401: 'Missing or wrong bearer token, or an ended session.',
    403: 'Authenticated by the session cookie, a request that changes state without an X-Requested-With header, or from another origin.',
    503: UNAVAILABLE,
  });
  // An endpoint's own reason for a status wins over the generic one.
  return { ...operation, responses: { ...generic, ...operation.responses } };
}

/** An agent endpoint: no token; the request is signed with the agent's own key. */
export function agent(operation: ZodOpenApiOperationObject): ZodOpenApiOperationObject {
  return {
    ...operation,
    security: [],
    requestParams: {
      ...operation.requestParams,
      header: z.object({
        [SIGNATURE_HEADERS.timestamp]: z.string().regex(/^\d+$/).meta({ description: 'Milliseconds since the epoch; at most 5 minutes from the server clock.' }),
        [SIGNATURE_HEADERS.signature]: z.string().meta({
          description: 'Base64 ECDSA P-256 (SHA-256) signature, by the agent key, of "METHOD\\npath?query\\ntimestamp\\nhex sha256 of the body bytes".',
        }),
      }),
    },
    responses: { ...refusals({ 503: UNAVAILABLE }), ...operation.responses },
  };
}
