import { z } from 'zod';
import type { ZodOpenApiPathsObject } from 'zod-openapi';
import { HOOK_KINDS } from '../../domain/states';
import { imageNameSchema, imageRegistration } from '../../images/image-routes';
import { discoverSchema } from '../../ssh/ssh-routes';
import { deploySchema } from '../routes/deploy-routes';
import { bulkSchema, eventsQuery, infoQuery, infoSchema } from '../routes/operation-routes';
import { nodePage, taskIdSchema, tasksQuery } from '../routes/task-routes';
import { paginationSchema } from '../validation';
import { jsonBody, noContent, ok, operator, refusals, withLocation } from './operation-parts';
import {
  bulkTaskSchema,
  clusterEventSchema,
  healthSchema,
  imageSchema,
  knownHostSchema,
  nodeSchema,
  pageHeaders,
  sshPublicKeySchema,
  taskDetailSchema,
  taskSchema,
} from './responses';

const TASK_LOCATION = '/api/v1/tasks/{task_id}: the task that follows the request.';
const BULK_REFUSED = 'Unknown nodes (404) or nodes whose state forbids it (409): `offenders` names every one; nothing started.';

/** contiv's multi-node requests, one per hook kind: every node's operation is queued, or none is. */
const bulkPaths: ZodOpenApiPathsObject = Object.fromEntries(
  HOOK_KINDS.map((kind) => [
    `/api/v1/${kind}/nodes`,
    {
      post: operator({
        tags: ['bulk'],
        operationId: `${kind}Nodes`,
        summary: `Run ${kind} on many nodes`,
        description: 'Validated as a whole before anything starts; each node is judged by the state its queued operations will leave it in.',
        requestBody: jsonBody(bulkSchema),
        responses: {
          202: withLocation('Queued.', bulkTaskSchema, TASK_LOCATION),
          ...refusals({ 404: BULK_REFUSED, 409: BULK_REFUSED }),
        },
      }),
    },
  ]),
);

/** Multi-node requests, images, SSH discovery, tasks, events, and the service's own health and metrics. */
export const fleetPaths: ZodOpenApiPathsObject = {
  '/healthz': {
    get: {
      tags: ['service'],
      operationId: 'health',
      summary: 'Whether the database and Temporal answer (no token)',
      security: [],
      responses: {
        200: ok('Both answer, within a second.', healthSchema),
        503: ok('Something is down; each dependency says what.', healthSchema),
      },
    },
  },
  '/metrics': {
    get: {
      tags: ['service'],
      operationId: 'metrics',
      summary: 'Prometheus metrics (text exposition format)',
      description: 'Needs the operator token unless METRICS_PUBLIC is set.',
      responses: {
        200: { description: 'The metrics.', content: { 'text/plain': { schema: z.string() } } },
        ...refusals({ 401: 'Missing or wrong bearer token (unless METRICS_PUBLIC).' }),
      },
    },
  },
  '/api/v1/openapi.json': {
    get: {
      tags: ['service'],
      operationId: 'openApiDocument',
      summary: 'This document (no token: it describes the API, it holds no data)',
      security: [],
      responses: { 200: ok('The OpenAPI 3.1 document.', z.looseObject({ openapi: z.string() })) },
    },
  },
  ...bulkPaths,
  '/api/v1/deploy/nodes': {
    post: operator({
      tags: ['bulk'],
      operationId: 'deployNodes',
      summary: 'Install an image on many nodes',
      description: 'Every node is queued (per node, under MAX_CONCURRENT_DEPLOYS) or none is.',
      requestBody: jsonBody(deploySchema),
      responses: {
        202: withLocation('Queued.', bulkTaskSchema, TASK_LOCATION),
        ...refusals({ 404: `No such image, or ${BULK_REFUSED}`, 409: `No provisioning network, or ${BULK_REFUSED}` }),
      },
    }),
  },
  '/api/v1/discover/nodes': {
    post: operator({
      tags: ['bulk'],
      operationId: 'discoverNodes',
      summary: 'Add machines by address over SSH',
      description: 'One row per address in the task (address, hostname, step, result.outcome joined or already_member).',
      requestBody: jsonBody(discoverSchema),
      responses: {
        202: withLocation('Queued.', bulkTaskSchema, TASK_LOCATION),
        ...refusals({ 400: 'Every empty, malformed, repeated or unpinned address is named; nothing started.' }),
      },
    }),
  },
  '/api/v1/info/nodes': {
    get: operator({
      tags: ['nodes'],
      operationId: 'nodesInfo',
      summary: 'Nodes by name; unknown names are ignored, none means all',
      description: 'By host name, a page at a time. With the names in the body there is no Link: send the same body with `?cursor=` set to `X-Next-Cursor`.',
      requestParams: { query: infoQuery },
      requestBody: { ...jsonBody(infoSchema, false), description: 'The names may come as a JSON body instead (contiv); not both.' },
      responses: { 200: { ...ok('A page of nodes.', z.array(nodeSchema)), headers: pageHeaders } },
    }),
  },
  '/api/v1/events': {
    get: operator({
      tags: ['nodes'],
      operationId: 'listEvents',
      summary: 'Cluster events, newest first, each with the nodes it concerns',
      description: 'A page at a time by cursor (`offset` still works, but not with `cursor`, and shifts when events arrive).',
      requestParams: { query: eventsQuery },
      responses: { 200: { ...ok('A page of events.', z.array(clusterEventSchema)), headers: pageHeaders } },
    }),
  },
  '/api/v1/tasks': {
    get: operator({
      tags: ['tasks'],
      operationId: 'listTasks',
      summary: 'Tasks, newest first',
      description: 'A page at a time by cursor (`offset` still works, but not with `cursor`, and shifts when tasks start).',
      requestParams: { query: tasksQuery },
      responses: { 200: { ...ok('A page of tasks.', z.array(taskSchema)), headers: pageHeaders } },
    }),
  },
  '/api/v1/tasks/{id}': {
    get: operator({
      tags: ['tasks'],
      operationId: 'getTask',
      summary: 'A task; a bulk task adds its decision, progress and per-node rows',
      requestParams: { path: z.object({ id: taskIdSchema }), query: nodePage },
      responses: { 200: ok('The task.', taskDetailSchema), ...refusals({ 404: 'No such task.' }) },
    }),
  },
  '/api/v1/images': {
    post: operator({
      tags: ['images'],
      operationId: 'registerImage',
      summary: 'Register an OS image',
      requestBody: jsonBody(imageRegistration),
      responses: {
        201: withLocation('Registered.', imageSchema, '/api/v1/images/{name}'),
        ...refusals({ 409: 'The name is in use.', 422: 'A part failed its check (named), or the disk does not hash to sha256.' }),
      },
    }),
    get: operator({
      tags: ['images'],
      operationId: 'listImages',
      summary: 'Registered images',
      responses: { 200: ok('The images.', z.array(imageSchema)) },
    }),
  },
  '/api/v1/images/{name}': {
    get: operator({
      tags: ['images'],
      operationId: 'getImage',
      summary: 'An image',
      requestParams: { path: z.object({ name: imageNameSchema }) },
      responses: { 200: ok('The image.', imageSchema), ...refusals({ 404: 'No such image.' }) },
    }),
    delete: operator({
      tags: ['images'],
      operationId: 'deleteImage',
      summary: 'Delete an image',
      requestParams: { path: z.object({ name: imageNameSchema }) },
      responses: { 204: noContent, ...refusals({ 404: 'No such image.', 409: 'An install uses it.' }) },
    }),
  },
  '/api/v1/ssh/public_key': {
    get: operator({
      tags: ['ssh'],
      operationId: 'sshPublicKey',
      summary: "The service's SSH key, for authorized_keys on the machines to add",
      responses: { 200: ok('The key.', sshPublicKeySchema) },
    }),
  },
  '/api/v1/ssh/known_hosts': {
    get: operator({
      tags: ['ssh'],
      operationId: 'listKnownHosts',
      summary: 'Host keys recorded on first use (tofu)',
      requestParams: { query: paginationSchema },
      responses: { 200: ok('The keys.', z.array(knownHostSchema)) },
    }),
  },
  '/api/v1/ssh/known_hosts/{address}': {
    delete: operator({
      tags: ['ssh'],
      operationId: 'forgetKnownHost',
      summary: "Forget a host's recorded key (the host was reinstalled)",
      requestParams: { path: z.object({ address: z.string().meta({ description: 'host, host:port or [v6]:port' }) }) },
      responses: { 204: noContent, ...refusals({ 404: 'No key is recorded for it.' }) },
    }),
  },
};
