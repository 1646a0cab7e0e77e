import { z } from 'zod';
import type { ZodOpenApiPathsObject } from 'zod-openapi';
import { announceSchema, readySchema } from '../routes/agent-routes';
import { enrollSchema, patchSchema, powerSchema, provisionSchema } from '../routes/enrollment-routes';
import { acceptSchema, actionSchema, nodesQuery, unmanagedQuery } from '../routes/node-routes';
import { hostnameSchema } from '../validation';
import { agent, jsonBody, noContent, ok, operator, refusals, withLocation } from './operation-parts';
import {
  announceResponseSchema,
  enrolledNodeSchema,
  nodeDetailSchema,
  nodeSchema,
  nodeTaskSchema,
  pageHeaders,
  powerReadingSchema,
  powerTaskSchema,
  readyResponseSchema,
  unmanagedSchema,
} from './responses';

const TASK_LOCATION = '/api/v1/tasks/{task_id}: the task that follows the request.';
/** Every per-node path names the node the same way, so that /nodes/{hostname} is one path item. */
const byHostname = { path: z.object({ hostname: hostnameSchema }) };

/** Agents announcing themselves, unmanaged nodes, managed nodes and their enrollment (Ironic's model). */
export const nodePaths: ZodOpenApiPathsObject = {
  '/api/v1/unmanaged_nodes': {
    post: agent({
      tags: ['agent'],
      operationId: 'announce',
      summary: 'An agent announces itself',
      description: 'Signed with the key it shows. A second key for a waiting host name is a claim of its own, never a replacement.',
      requestBody: jsonBody(announceSchema),
      responses: {
        200: ok('Announced before.', announceResponseSchema),
        201: ok('A new host, or a new claim on a waiting host.', announceResponseSchema),
        ...refusals({
          400: 'Invalid body, a public key that is not one EC P-256 PEM block, or a fingerprint that is not its key.',
          401: 'Missing, stale or wrong signature.',
          409: 'A key that was rejected, or that differs from the accepted one.',
        }),
      },
    }),
    get: operator({
      tags: ['nodes'],
      operationId: 'listUnmanagedNodes',
      summary: 'Keys claiming hosts not yet accepted',
      description: 'One entry per key, by host name then oldest claim; several keys for one host are listed side by side with `conflict: true`. Paged: see the response headers.',
      requestParams: { query: unmanagedQuery },
      responses: { 200: { ...ok('A page of claims.', z.array(unmanagedSchema)), headers: pageHeaders } },
    }),
  },
  '/api/v1/agent/ready': {
    post: agent({
      tags: ['agent'],
      operationId: 'agentReady',
      summary: "An accepted agent's one-time ready message",
      description: 'Relayed to the node workflow as its ready signal. An unknown host is answered exactly as a bad signature is.',
      requestBody: jsonBody(readySchema),
      responses: {
        202: ok('Relayed.', readyResponseSchema),
        ...refusals({ 400: 'Invalid body.', 401: 'Not authenticated (or no such host).', 409: 'The host has not been accepted yet.' }),
      },
    }),
  },
  '/api/v1/unmanaged_nodes/{hostname}/accept': {
    post: operator({
      tags: ['nodes'],
      operationId: 'acceptNode',
      summary: 'Accept a host by the fingerprint its agent prints',
      description:
        "The node takes that claim's key and address; the other claims are rejected. Initialization starts. The accept is durable at the 202: " +
        'its task is written (queued) and handed to the node\'s workflow without waiting for a worker, which applies it when it can ' +
        '(checking state and key again in the same transaction); `state` is the state the node had when the request was taken.',
      requestParams: byHostname,
      requestBody: jsonBody(acceptSchema),
      responses: {
        202: withLocation(
          'Queued; the task starts when the workflow applies the accept and runs until the node is active or failed. A refusal found then (say, accepted meanwhile under another key) fails the task with the reason.',
          nodeTaskSchema,
          TASK_LOCATION,
        ),
        ...refusals({
          404: 'No such host.',
          409: 'The node is not unmanaged, or an accept of it is already queued (`task_id`).',
          422: 'No claim has that fingerprint.',
          503: 'The database or Temporal did not answer; nothing was queued.',
        }),
      },
    }),
  },
  '/api/v1/nodes': {
    get: operator({
      tags: ['nodes'],
      operationId: 'listNodes',
      summary: 'Accepted nodes, or those in one state',
      description: 'By host name, a page at a time: follow `Link rel="next"` (or pass `X-Next-Cursor` as `cursor`) until a page has none.',
      requestParams: { query: nodesQuery },
      responses: { 200: { ...ok('A page of nodes.', z.array(nodeSchema)), headers: pageHeaders } },
    }),
    post: operator({
      tags: ['enrollment'],
      operationId: 'enrollNode',
      summary: 'Enroll a node by its driver (BMC or agent)',
      requestBody: jsonBody(enrollSchema),
      responses: {
        201: withLocation('Enrolled, in state enroll.', enrolledNodeSchema, '/api/v1/nodes/{name}'),
        ...refusals({ 409: 'The name or a MAC is in use.' }),
      },
    }),
  },
  '/api/v1/nodes/{hostname}': {
    get: operator({
      tags: ['nodes'],
      operationId: 'getNode',
      summary: 'A node with its queued operations, events, install and boot entry',
      requestParams: byHostname,
      responses: { 200: ok('The node.', nodeDetailSchema), ...refusals({ 404: 'No such node.' }) },
    }),
    patch: operator({
      tags: ['enrollment'],
      operationId: 'changeNode',
      summary: "Change an enrolled node's driver_info, instance_info or ports",
      description: 'Only in enroll, manageable, adopt failed and deploy failed.',
      requestParams: byHostname,
      requestBody: jsonBody(patchSchema),
      responses: {
        200: ok('The node as changed.', enrolledNodeSchema),
        ...refusals({ 404: 'No such node.', 409: 'Not allowed in its state, or a MAC in use.', 422: 'The change does not check out.' }),
      },
    }),
    delete: operator({
      tags: ['enrollment'],
      operationId: 'deleteNode',
      summary: 'Delete an enrolled node',
      description: 'Only in enroll, manageable, adopt failed and deploy failed; no cleaning; its DHCP entry becomes ignore.',
      requestParams: byHostname,
      responses: { 204: noContent, ...refusals({ 404: 'No such node.', 409: 'Not allowed in its state.' }) },
    }),
  },
  '/api/v1/nodes/{hostname}/actions': {
    post: operator({
      tags: ['nodes'],
      operationId: 'nodeAction',
      summary: 'Reinitialize a failed node',
      requestParams: byHostname,
      requestBody: jsonBody(actionSchema),
      responses: {
        202: withLocation('Started.', nodeTaskSchema, TASK_LOCATION),
        ...refusals({ 404: 'No such node.', 409: 'Not allowed from its state (`state` and `allowed` say why).' }),
      },
    }),
  },
  '/api/v1/nodes/{hostname}/states/provision': {
    put: operator({
      tags: ['enrollment'],
      operationId: 'provisionNode',
      summary: 'manage, adopt, deploy, rebuild or abort',
      description: 'deploy and rebuild go through the install queue (MAX_CONCURRENT_DEPLOYS), like a bulk deploy.',
      requestParams: byHostname,
      requestBody: jsonBody(provisionSchema),
      responses: {
        202: withLocation('Started or queued.', nodeTaskSchema, TASK_LOCATION),
        ...refusals({ 404: 'No such node, or no such image.', 409: 'Not allowed from its state (with the allowed verbs).' }),
      },
    }),
  },
  '/api/v1/nodes/{hostname}/states/power': {
    get: operator({
      tags: ['enrollment'],
      operationId: 'readPower',
      summary: "The node's power state, from its BMC or as last known",
      requestParams: byHostname,
      responses: { 200: ok('The power state.', powerReadingSchema), ...refusals({ 404: 'No such node.', 409: 'The node has no driver.' }) },
    }),
    put: operator({
      tags: ['enrollment'],
      operationId: 'changePower',
      summary: 'Power on, off or reboot; the target becomes the enforced state',
      requestParams: byHostname,
      requestBody: jsonBody(powerSchema),
      responses: {
        202: withLocation('Started.', powerTaskSchema, TASK_LOCATION),
        ...refusals({ 404: 'No such node.', 409: 'Not allowed in its state.' }),
      },
    }),
  },
};
