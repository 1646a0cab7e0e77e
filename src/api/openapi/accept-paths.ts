import type { ZodOpenApiPathsObject } from 'zod-openapi';
import { bulkAcceptSchema } from '../routes/bulk-accept-routes';
import { jsonBody, operator, refusals, withLocation } from './operation-parts';
import { bulkTaskSchema } from './responses';

const REFUSED =
  'Nothing was accepted. `offenders` names every entry that stopped the request: an unknown host (then 404), a host already ' +
  'accepted or being accepted, one with no pending claim, or a fingerprint no pending claim has (with `fingerprints`, the keys that do claim the host).';

/** salt-key -A: many hosts accepted as one task. */
export const acceptPaths: ZodOpenApiPathsObject = {
  '/api/v1/unmanaged_nodes/accept': {
    post: operator({
      tags: ['nodes', 'bulk'],
      operationId: 'acceptNodes',
      summary: 'Accept many hosts, each by the fingerprint its agent prints',
      description:
        'Validated as a whole: every entry is accepted, or none is. The request is written to the database before the 202, and the ' +
        "accepts are sent afterwards by the task's workflow; each is decided again by its fingerprint when it is applied, so a claim " +
        "rejected or accepted under another key meanwhile fails that node's row and never accepts a wrong key. " +
        "GET the task for per-node progress: a node's row succeeds when the node is active, and fails when its initialization fails.",
      requestBody: jsonBody(bulkAcceptSchema),
      responses: {
        202: withLocation('Queued.', bulkTaskSchema, '/api/v1/tasks/{task_id}: the task that follows the request.'),
        ...refusals({
          400: 'Invalid body: no entries, more than 10,000, a host named twice, or a malformed host name or fingerprint (each named in `fields`).',
          404: REFUSED,
          409: REFUSED,
          503: 'Temporal did not take the request; nothing will be accepted.',
        }),
      },
    }),
  },
};
