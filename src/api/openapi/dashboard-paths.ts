import { z } from 'zod';
import type { ZodOpenApiPathsObject } from 'zod-openapi';
import { dashboardNodesQuery } from '../../dashboard/routes';
import type { FleetSummary, NodeSummary } from '../../dashboard/fleet-repo';
import { loginSchema } from '../../dashboard/session-routes';
import { SESSION_COOKIE } from '../../dashboard/sessions';
import { jsonBody, noContent, ok, operator, refusals } from './operation-parts';
import { nodeSchema, nodeState, same } from './responses';

/** What the web dashboard calls: its log-in session and the views only it needs. */

export const nodeSummarySchema = nodeSchema
  .pick({
    hostname: true,
    state: true,
    target_state: true,
    allowed_actions: true,
    fingerprint: true,
    address: true,
    last_error: true,
    reachable: true,
    last_seen_at: true,
    power_state: true,
    power_fault: true,
    driver: true,
    updated_at: true,
  })
  .meta({ id: 'NodeSummary', description: 'A node as lists show it: without facts, driver and boot data.' });
same<z.infer<typeof nodeSummarySchema>, NodeSummary>(true);

export const fleetSummarySchema = z
  .strictObject({
    total: z.number().int(),
    by_state: z.record(z.string(), z.number().int()),
    reachable: z.number().int(),
    unreachable: z.number().int(),
    power_faults: z.number().int(),
    pending_claims: z.number().int(),
    tasks_in_flight: z.number().int(),
  })
  .meta({ id: 'FleetSummary' });
same<z.infer<typeof fleetSummarySchema>, FleetSummary>(true);

const nodePageSchema = z
  .strictObject({ total: z.number().int().meta({ description: 'Nodes the filter matches.' }), limit: z.number().int(), offset: z.number().int(), nodes: z.array(nodeSummarySchema) })
  .meta({ id: 'NodePage' });

export const dashboardPaths: ZodOpenApiPathsObject = {
  '/api/v1/session': {
    post: {
      tags: ['dashboard'],
      operationId: 'logIn',
      summary: 'Log in with the operator token: sets the httpOnly session cookie',
      security: [],
      requestBody: jsonBody(loginSchema),
      responses: {
        201: {
          ...ok('Logged in.', z.strictObject({ expires_at: z.iso.datetime() })),
          headers: z.object({ 'set-cookie': z.string().meta({ description: `${SESSION_COOKIE}=…; HttpOnly; SameSite=Strict` }) }),
        },
        ...refusals({ 400: 'Invalid body.', 401: 'Wrong token.' }),
      },
    },
    get: operator({
      tags: ['dashboard'],
      operationId: 'whoAmI',
      summary: 'Whether the request is authenticated, and how',
      responses: { 200: ok('Authenticated.', z.strictObject({ authenticated: z.literal(true), via: z.enum(['session', 'bearer']) })) },
    }),
    delete: {
      tags: ['dashboard'],
      operationId: 'logOut',
      summary: 'Log out: ends the session, if any, and clears the cookie',
      security: [],
      requestParams: { header: z.object({ 'x-requested-with': z.string().meta({ description: 'Any value: proof that a same-origin script sent it.' }) }) },
      responses: { 204: noContent, ...refusals({ 403: 'No X-Requested-With header.' }) },
    },
  },
  '/api/v1/dashboard/nodes': {
    get: operator({
      tags: ['dashboard'],
      operationId: 'dashboardNodes',
      summary: 'One page of nodes, filtered, in host name order',
      requestParams: { query: dashboardNodesQuery },
      responses: { 200: ok('The page.', nodePageSchema) },
    }),
  },
  '/api/v1/dashboard/summary': {
    get: operator({
      tags: ['dashboard'],
      operationId: 'fleetSummary',
      summary: 'Counts by state, reachability, power faults, claims waiting, tasks in flight',
      responses: { 200: ok('The summary.', fleetSummarySchema) },
    }),
  },
  '/api/v1/dashboard/settings': {
    get: operator({
      tags: ['dashboard'],
      operationId: 'dashboardSettings',
      summary: 'What the dashboard links to',
      responses: {
        200: ok(
          'The settings.',
          z.strictObject({
            temporal_workflows_url: z.string().nullable().meta({ description: "The Temporal web UI's workflow list; a node's workflow is linked under it." }),
            states: z.array(nodeState).meta({ description: 'Every node state, in the order of the lifecycle table.' }),
          }),
        ),
      },
    }),
  },
  '/api/v1/dashboard/stream': {
    get: operator({
      tags: ['dashboard'],
      operationId: 'dashboardStream',
      summary: 'Live changes as Server-Sent Events (hello, then a message per poll that found changes)',
      responses: {
        200: { description: 'An event stream; it stays open.', content: { 'text/event-stream': { schema: z.string() } } },
      },
    }),
  },
};
