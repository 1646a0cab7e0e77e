import { z } from 'zod';
import { CLUSTER_EVENT_TYPES } from '../../db/events-repo';
import { TASK_STATUSES } from '../../db/tasks-repo';
import type { annealProgress } from '../../deployments/noderoles-repo';
import { NODEROLE_STATES, type NoderoleState } from '../../domain/noderoles';
import { NODE_STATES, OPERATION_KINDS, OPERATOR_VERBS, type NodeEvent } from '../../domain/states';
import { POWER_TARGETS } from '../../drivers/types';
import type { presentBootEntry, presentEvent, presentInstall, presentNode, presentOperation, presentTask, presentUnmanaged } from '../present';
import type { presentImage } from '../../images/image-routes';

/**
 * What the API answers, as zod schemas the OpenAPI document is generated from. Each shape written in
 * src/api/present.ts is pinned to its schema at compile time (`same` below); test/openapi.test.ts checks
 * real answers against the generated document.
 */

/** True only when both types accept exactly the same values: a field added to or dropped from present.ts fails the build. */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
export function same<A, B>(_proof: Same<A, B>): void {}

export const timestamp = z.iso.datetime().meta({ id: 'Timestamp', description: 'ISO 8601, UTC.' });
const jsonObject = z.record(z.string(), z.unknown());
export const nodeState = z.enum(NODE_STATES).meta({ id: 'NodeState' });
const taskId = z.uuid().meta({ description: 'The task that follows the request: GET /api/v1/tasks/{id}.' });

export const nodeSchema = z
  .strictObject({
    hostname: z.string(),
    state: nodeState,
    target_state: nodeState.nullable().meta({ description: 'The stable state a transient state is heading for.' }),
    allowed_actions: z.array(z.enum(OPERATOR_VERBS as readonly NodeEvent[] as [NodeEvent, ...NodeEvent[]])),
    deployment: z.string().meta({ description: 'The deployment the node belongs to (`system` until it is moved or bound elsewhere).' }),
    fingerprint: z.string().nullable(),
    address: z.string().nullable(),
    last_error: z.string().nullable(),
    reachable: z.boolean(),
    last_seen_at: timestamp.nullable(),
    monitoring_silenced: z.boolean(),
    driver: z.string().nullable(),
    driver_info: jsonObject.nullable().meta({ description: 'Secret fields are shown as "******", never with their value.' }),
    instance_info: jsonObject.nullable(),
    boot_config: jsonObject.nullable(),
    power_state: z.string().nullable(),
    enforced_power_state: z.string().nullable(),
    power_fault: z.boolean(),
    facts: jsonObject.nullable(),
    announced_at: timestamp.nullable(),
    accepted_at: timestamp.nullable(),
    facts_at: timestamp.nullable(),
    created_at: timestamp,
    updated_at: timestamp,
  })
  .meta({ id: 'Node' });
same<z.infer<typeof nodeSchema>, ReturnType<typeof presentNode>>(true);

export const unmanagedSchema = z
  .strictObject({
    hostname: z.string(),
    fingerprint: z.string(),
    address: z.string(),
    announced_at: timestamp.meta({ description: 'When this key first announced the host.' }),
    last_seen_at: timestamp,
    claims: z.number().int().meta({ description: 'How many keys claim this host name.' }),
    conflict: z.boolean().meta({ description: 'More than one key claims the host name: compare fingerprints before accepting.' }),
  })
  .meta({ id: 'UnmanagedNode' });
same<z.infer<typeof unmanagedSchema>, ReturnType<typeof presentUnmanaged>>(true);

export const operationSchema = z
  .strictObject({
    id: z.number().int(),
    task_id: z.string(),
    hostname: z.string().nullable().meta({ description: 'null for a discovery until it names its node.' }),
    address: z.string().optional().meta({ description: "A discovery's address." }),
    step: z.string().nullable().optional().meta({ description: 'The step a discovery is at, or failed in.' }),
    kind: z.enum([...OPERATION_KINDS, 'discover', 'accept', 'role']).meta({ description: "`role`: a deployment's script role, queued by its annealer." }),
    status: z.enum(['queued', 'running', 'waiting', 'succeeded', 'failed']),
    error: z.string().nullable(),
    result: jsonObject.nullable(),
    created_at: timestamp,
    started_at: timestamp.nullable(),
    finished_at: timestamp.nullable(),
  })
  .meta({ id: 'Operation' });
same<z.infer<typeof operationSchema>, ReturnType<typeof presentOperation>>(true);

export const nodeEventSchema = z
  .strictObject({
    id: z.number().int(),
    type: z.string(),
    from_state: z.string().nullable(),
    to_state: z.string().nullable(),
    event: z.string().nullable(),
    cause: z.string().nullable(),
    task_id: z.string().nullable(),
    at: timestamp,
  })
  .meta({ id: 'NodeEvent' });
same<z.infer<typeof nodeEventSchema>, ReturnType<typeof presentEvent>>(true);

export const installSchema = z
  .strictObject({
    task_id: z.string(),
    image: z.string(),
    status: z.enum(['queued', 'running', 'succeeded', 'failed', 'aborted']),
    phase: z.string().nullable(),
    phases: z.array(z.strictObject({ phase: z.string(), at: z.string() })),
    error: z.string().nullable(),
    queue_position: z.number().int().nullable(),
    power_cycles: z.number().int(),
    started_at: timestamp,
    finished_at: timestamp.nullable(),
  })
  .meta({ id: 'Install' });
same<z.infer<typeof installSchema>, ReturnType<typeof presentInstall>>(true);

export const bootEntrySchema = z
  .strictObject({
    mac: z.string(),
    address: z.string(),
    boot_env: z.string().meta({ description: "'local' or 'install:<image>'." }),
    generation: z.number().int(),
    dhcp_enabled: z.boolean(),
  })
  .meta({ id: 'BootEntry' });
same<z.infer<typeof bootEntrySchema>, ReturnType<typeof presentBootEntry>>(true);

/** The workflow's live view of an initializing node (workflows/definitions.ts NodeStatus). */
const initializationSchema = z.strictObject({
  hostname: z.string(),
  state: nodeState,
  target: nodeState.nullable(),
  last_error: z.string().nullable(),
  task_id: z.string().nullable(),
  phase: z.string(),
  operation: z.strictObject({ id: z.number().int(), task_id: z.string(), kind: z.string() }).nullable(),
  window_ends_at: timestamp.nullable(),
  attempts: z.number().int(),
});

export const nodeDetailSchema = nodeSchema
  .extend({
    operations: z.array(operationSchema).meta({ description: 'Queued and running operations, in the order they run.' }),
    events: z.array(nodeEventSchema),
    reachability_events: z.array(z.strictObject({ type: z.string(), at: timestamp })),
    deploy: installSchema.nullable().meta({ description: 'The latest install.' }),
    boot: bootEntrySchema.nullable(),
    initialization: initializationSchema.nullable().optional().meta({ description: 'While initializing; null when Temporal did not answer.' }),
  })
  .meta({ id: 'NodeDetail' });

export const enrolledNodeSchema = nodeSchema.extend({ ports: z.array(z.string()).meta({ description: "The node's MACs." }) }).meta({ id: 'EnrolledNode' });

export const taskSchema = z
  .strictObject({
    id: z.string(),
    kind: z.string().meta({ description: "The request it follows (commission, deploy, ...); `anneal`: a deployment's commit or a noderole's retry." }),
    hostname: z.string().nullable().meta({ description: 'null for a bulk or an anneal task.' }),
    status: z.enum(TASK_STATUSES),
    error: z.string().nullable(),
    result: jsonObject.nullable(),
    details: jsonObject.nullable(),
    decision: z.string().nullable().meta({ description: "A commission's outcome as a whole: commit or rollback." }),
    created_at: timestamp,
    started_at: timestamp.nullable(),
    finished_at: timestamp.nullable(),
  })
  .meta({ id: 'Task' });
same<z.infer<typeof taskSchema>, ReturnType<typeof presentTask>>(true);

/** A bulk task's per-node operations by status. */
const bulkProgressSchema = z
  .strictObject({
    total: z.number().int(),
    queued: z.number().int(),
    running: z.number().int(),
    waiting: z.number().int(),
    succeeded: z.number().int(),
    failed: z.number().int(),
  })
  .meta({ id: 'BulkProgress', description: "A bulk task: its nodes' operations by status." });

export const noderoleState = z.enum(NODEROLE_STATES).meta({
  id: 'NoderoleState',
  description:
    'proposed -> todo (commit) -> transition (running on its node) -> active | error; blocked: a role it requires on the same node is in error or blocked. ' +
    'A retry puts an error back to todo, with what it blocked.',
});

/** An anneal task's noderoles by state (every state a noderole can reach once committed). */
const annealStates = NODEROLE_STATES.filter((state): state is Exclude<NoderoleState, 'proposed'> => state !== 'proposed');
const annealProgressSchema = z
  .strictObject({ total: z.number().int(), ...(Object.fromEntries(annealStates.map((state) => [state, z.number().int()])) as Record<(typeof annealStates)[number], z.ZodNumber>) })
  .meta({ id: 'AnnealProgress', description: "An anneal task (a deployment's commit or a noderole's retry): its noderoles by state." });

const annealNoderoleSchema = z
  .strictObject({ id: z.number().int(), role: z.string(), node: z.string(), state: noderoleState, error: z.string().nullable() })
  .meta({ id: 'AnnealNoderole' });
same<z.infer<typeof annealNoderoleSchema>, Awaited<ReturnType<typeof annealProgress>>['noderoles'][number]>(true);

export const taskDetailSchema = taskSchema
  .extend({
    progress: z.union([bulkProgressSchema, annealProgressSchema]).optional().meta({ description: 'Bulk and anneal tasks only.' }),
    nodes: z.array(operationSchema).optional().meta({ description: 'Bulk tasks only: one row per node (or address), paged by node_limit and node_offset.' }),
    noderoles: z
      .array(annealNoderoleSchema)
      .optional()
      .meta({ description: "Anneal tasks only: the noderoles it put in todo, by id (the first node_limit); GET /api/v1/noderoles/{id} for one's attributes and last run." }),
  })
  .meta({
    id: 'TaskDetail',
    description:
      "A bulk task (hostname null) adds `progress` and `nodes`; an anneal task (kind `anneal`, details.deployment) adds `progress` and `noderoles`: it succeeds when all of them are active, and fails, naming the others, when the rest are in error or blocked.",
  });

export const clusterEventSchema = z
  .strictObject({ id: z.number().int(), type: z.enum(CLUSTER_EVENT_TYPES), nodes: z.array(z.string()), at: timestamp })
  .meta({ id: 'ClusterEvent' });

export const imageSchema = z
  .strictObject({
    name: z.string(),
    kernel: z.string(),
    initrd: z.string(),
    disk: z.string(),
    sha256: z.string(),
    size: z.number().int().meta({ description: 'Bytes of the disk image.' }),
    created_at: timestamp,
  })
  .meta({ id: 'Image' });
same<z.infer<typeof imageSchema>, ReturnType<typeof presentImage>>(true);

export const knownHostSchema = z
  .strictObject({ address: z.string(), key_type: z.string(), fingerprint: z.string(), first_seen_at: timestamp, last_seen_at: timestamp })
  .meta({ id: 'KnownHost' });

export const announceResponseSchema = z
  .strictObject({
    hostname: z.string(),
    state: z.string(),
    accepted: z.boolean(),
    server_fingerprint: z.string().meta({ description: "The service's key: the agent pins it." }),
  })
  .meta({ id: 'AnnounceResponse' });

export const readyResponseSchema = z.strictObject({ hostname: z.string(), state: z.string() }).meta({ id: 'ReadyResponse' });

/** 202 of a command on one node; Location names the task. */
export const nodeTaskSchema = z.strictObject({ task_id: taskId, hostname: z.string(), state: z.string().nullable() }).meta({ id: 'NodeTaskAccepted' });

export const powerTaskSchema = z.strictObject({ task_id: taskId, hostname: z.string(), target: z.enum(POWER_TARGETS) }).meta({ id: 'PowerTaskAccepted' });

export const bulkTaskSchema = z
  .strictObject({
    task_id: taskId,
    kind: z.string(),
    nodes: z.number().int().optional().meta({ description: 'How many nodes the task covers.' }),
    addresses: z.number().int().optional().meta({ description: 'A discovery: how many addresses it covers.' }),
    image: z.string().optional().meta({ description: 'A deploy: the image installed.' }),
  })
  .meta({ id: 'BulkTaskAccepted' });

export const powerReadingSchema = z
  .strictObject({
    power_state: z.string().nullable(),
    source: z.enum(['bmc', 'last known']),
    error: z.string().optional().meta({ description: 'Why the BMC gave no answer (source "last known").' }),
    enforced_power_state: z.string().nullable(),
    power_fault: z.boolean(),
    driver: z.string(),
  })
  .meta({ id: 'PowerReading' });

export const sshPublicKeySchema = z
  .strictObject({ public_key: z.string().meta({ description: 'One authorized_keys line.' }), fingerprint: z.string() })
  .meta({ id: 'SshPublicKey' });

export const healthSchema = z
  .strictObject({ status: z.enum(['ok', 'unavailable']), database: z.string(), temporal: z.string() })
  .meta({ id: 'Health', description: '"ok" or "unavailable: ..." per dependency, never an address.' });

/** The body of every error answer (src/api/errors-middleware.ts); the details depend on the code. */
export const errorSchema = z
  .strictObject({
    error: z.looseObject({
      code: z.string().meta({
        description:
          'malformed_json, validation_failed, bad_request (400); unauthorized (401); csrf_refused (403); not_found (404); conflict, invalid_state (409); request_refused (404 or 409); fingerprint_mismatch, image_check_failed (422); unavailable, request_expired, secrets_key_mismatch (503); internal_error (500).',
      }),
      message: z.string(),
      field: z.string().optional(),
      fields: z.array(z.strictObject({ field: z.string(), problem: z.string() })).optional().meta({ description: 'validation_failed: every offending field.' }),
      offenders: z
        .array(z.looseObject({ node: z.string(), problem: z.string(), state: z.string().optional(), allowed: z.array(z.string()).optional() }))
        .optional()
        .meta({ description: 'request_refused: every node that stopped the request.' }),
      state: z.string().optional(),
      allowed: z.array(z.string()).optional(),
      task_id: z.string().optional(),
    }),
  })
  .meta({ id: 'Error' });

/**
 * The headers of every paged list (src/api/paging.ts). The body stays a JSON array; a client that
 * wants everything follows `Link rel="next"` (or sends `X-Next-Cursor` back as `?cursor=`) until a
 * page has none.
 */
export const pageHeaders = z.object({
  link: z
    .string()
    .optional()
    .meta({ description: 'RFC 8288 `<...>; rel="next"`: this request with the next cursor; absent on the last page.', example: '</api/v1/nodes?state=active&limit=100&cursor=WyJub2RlMDEyMyJd>; rel="next"' }),
  'x-next-cursor': z.string().optional().meta({ description: 'The bare cursor of the next page, for ?cursor=; absent on the last page.' }),
  'x-total-count': z.string().regex(/^\d+$/).meta({ description: 'Entries matching the filters, over all pages: counted, or estimated when counting would read more than 10,000 rows.' }),
  'x-total-count-estimated': z.literal('true').optional().meta({ description: "Present when X-Total-Count is the planner's estimate rather than a count." }),
});
