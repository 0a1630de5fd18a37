/**
 * The management API's request and response shapes, in zod. The route table (`routes.ts`) names
 * them per route: requests are validated with them, handlers are typed by them and the OpenAPI
 * document is generated from them. The shapes of the vocabulary (instance, run, step, event) are
 * `model.ts`'s types: each schema here is checked by the compiler to describe exactly that type.
 * This file imports only zod and the vocabulary, so that the console can import its types.
 */
import { z } from 'zod';
import { ACTIVITY_TYPES } from '../../lifecycle/names.js';
import { FINAL } from '../../lifecycle/statuses.js';
import {
  type ActivityEvent,
  type ErrorInfo,
  INSTANCE_STATUSES,
  type Instance,
  type Json,
  type Run,
  type Step,
  type Wait,
} from '../../model.js';

const oneOrMany = <T extends z.ZodType>(item: T) => z.union([item, z.array(item).max(50)]);

const instanceStatus = z.enum(INSTANCE_STATUSES);
const rerunFrom = z.enum(['failed-step', 'start']);

/** A point in time: milliseconds since the epoch, or an ISO 8601 date-time. */
const time = z
  .string()
  .max(40)
  .transform((value, ctx) => {
    const ms = /^\d{1,15}$/.test(value) ? Number(value) : Date.parse(value);
    if (!Number.isFinite(ms)) {
      ctx.addIssue({
        code: 'custom',
        message: 'must be milliseconds since the epoch or an ISO 8601 date-time',
      });
      return z.NEVER;
    }
    return ms;
  });

const filterFields = {
  integration: oneOrMany(z.string().min(1).max(100)).optional().describe('Integration id(s)'),
  status: oneOrMany(instanceStatus).optional().describe('Status(es)'),
  tracking: z.string().min(1).max(300).optional().describe('A tracking field value, or `name=value`'),
  cloudEvent: z
    .string()
    .min(1)
    .max(1100)
    .optional()
    .describe(
      'Started by a CloudEvent with this type, source or subject; or one of them: `type=…`, `source=…`, `subject=…`',
    ),
  parent: z.string().min(1).max(100).optional().describe('Instances started by this instance'),
  from: time.optional().describe('Created at or after (ms since epoch or ISO 8601)'),
  to: time.optional().describe('Created before (ms since epoch or ISO 8601)'),
  rerunSince: time.optional().describe('Current run started at or after (e.g. `at` of a bulk rerun)'),
};

export const instanceFilterSchema = z.strictObject(filterFields);

export const NOT_ISSUED = 'is not a cursor this server issued: pass the one it gave, unchanged';

/**
 * Both stores page instances by `seq` and issue it in decimal. Any other text (`abc`, `1e999`, `-1`)
 * is refused: read as a number it would answer an empty or the first page, hiding the mistake.
 */
const pageCursor = z
  .string()
  .refine((value) => /^[1-9]\d{0,15}$/.test(value) && Number.isSafeInteger(Number(value)), NOT_ISSUED);

export const listInstancesQuery = z.strictObject({
  ...filterFields,
  limit: z.coerce.number().int().min(1).max(1000).default(50),
  cursor: pageCursor.optional().describe('`nextCursor` of the previous page'),
});

/** `Idempotency-Key` of a run-now, as documented (the handler reads and checks it: `idempotencyKeyOf`). */
export const idempotencyKeyHeader = z.string().max(255);
/** `Last-Event-ID` of a reconnecting stream (the handler checks it is a position the store issued). */
export const lastEventIdHeader = z.string();
/** The body of the activity stream: Server-Sent Events text. */
export const streamSchema = z.string();

export const instanceIdParams = z.strictObject({ id: z.string().min(1).max(100) });
export const integrationIdParams = z.strictObject({ id: z.string().min(1).max(100) });

export const rerunBody = z.strictObject({
  from: rerunFrom.default('failed-step'),
  input: z.unknown().optional().describe('Corrected input for the new run (validated by the schema)'),
});

export const bulkRerunBody = z
  .strictObject({
    filter: instanceFilterSchema.optional().describe('Every finished instance that matches'),
    ids: z.array(z.string().min(1).max(100)).min(1).max(1000).optional().describe('These instances'),
    from: rerunFrom.default('failed-step'),
  })
  .refine((body) => (body.filter === undefined) !== (body.ids === undefined), {
    message: 'Give exactly one of filter and ids',
    path: ['filter'],
  });

export const acknowledgeBody = z.strictObject({
  note: z.string().max(500).optional().describe('Kept with the acknowledgement (what was done about it)'),
});

// ── Responses (documentation, and a drift check in the tests) ─────────────────────────────────

/** A stored JSON value (documented as any value). */
const json = z.custom<Json>();
const errorInfo = z.object({
  name: z.string(),
  message: z.string(),
  code: z.string().optional(),
  stack: z.string().optional(),
  details: z.record(z.string(), json).optional(),
});

export const instanceSchema = z.object({
  id: z.string(),
  seq: z.number(),
  integrationId: z.string(),
  mode: z.enum(['sync', 'async', 'scheduled']),
  status: instanceStatus,
  input: json,
  output: json,
  error: errorInfo.nullable(),
  run: z.number().int(),
  attempt: z.number().int(),
  tracking: z.record(z.string(), z.string()),
  orderingKey: z.string().nullable(),
  idempotencyKey: z.string().nullable(),
  parentId: z.string().nullable(),
  createdAt: z.number(),
  updatedAt: z.number(),
  runAt: z.number(),
  startedAt: z.number().nullable().describe("When the current run's first attempt started"),
  finishedAt: z.number().nullable(),
  durationMs: z
    .number()
    .nullable()
    .describe(
      "ms from the current run's first attempt start to its final state (sync: the call); null until final",
    ),
  version: z
    .string()
    .nullable()
    .describe(
      'The integration version it was accepted on (it runs on that version’s handler); null: unversioned',
    ),
  acknowledgedAt: z
    .number()
    .nullable()
    .describe(
      'When an operator acknowledged the failure (it leaves the default errors view); a rerun clears it',
    ),
  acknowledgedNote: z.string().nullable().describe('The note given with the acknowledgement'),
  cloudEvent: z
    .object({ id: z.string(), source: z.string(), type: z.string(), subject: z.string().nullable() })
    .optional()
    .describe('The CloudEvent that started it on an async trigger (its attributes); absent otherwise'),
  traceId: z
    .string()
    .nullable()
    .describe("The W3C trace id of the instance's spans (docs/tracing.md); null: none"),
});

const runSchema = z.object({
  instanceId: z.string(),
  run: z.number().int(),
  from: rerunFrom.nullable(),
  status: z.enum(['running', ...FINAL]),
  input: json,
  startedAt: z.number(),
  finishedAt: z.number().nullable(),
  error: errorInfo.nullable(),
});

const stepSchema = z.object({
  instanceId: z.string(),
  run: z.number().int(),
  name: z.string(),
  position: z.number().int(),
  status: z.enum(['succeeded', 'failed']),
  output: json,
  error: errorInfo.nullable(),
  attempt: z.number().int(),
  startedAt: z.number(),
  finishedAt: z.number(),
  seeded: z.boolean(),
});

const eventSchema = z.object({
  id: z.number(),
  instanceId: z.string(),
  integrationId: z.string(),
  run: z.number().int(),
  type: z.enum(ACTIVITY_TYPES),
  at: z.number(),
  data: z.record(z.string(), json),
});

const waitSchema = z.object({
  run: z.number().int(),
  name: z.string().describe('The step name it is memoised under'),
  kind: z.enum(['sleep', 'event', 'callback']),
  event: z.string().nullable().describe('Kind event: the event name it waits for'),
  match: z.record(z.string(), json).nullable().describe('Kind event: the payload fields it matches'),
  createdAt: z.number(),
  until: z.number().nullable().describe("A sleep's end or the timeout (ms since epoch); null: no timeout"),
  resolvedAt: z.number().nullable().describe('Null while it waits'),
  resolution: z.enum(['time', 'event', 'callback', 'timeout']).nullable(),
  eventId: z.string().nullable().describe('The event that resolved it'),
});

/** A connection call, under the step and attempt that made it (from its `connection.call` event). */
const timelineCallSchema = z.object({
  id: z.number().describe("The call's activity event id"),
  connection: z.string(),
  method: z.string(),
  url: z.string(),
  status: z.number().nullable().describe('The response status; null: no response'),
  failed: z.boolean(),
  startedAt: z.number(),
  finishedAt: z.number(),
  ms: z.number(),
});

const timelineStepSchema = z.object({
  name: z.string(),
  startedAt: z.number(),
  finishedAt: z.number().nullable().describe('Null while it runs, or when its attempt ended inside it'),
  ms: z.number(),
  status: z.enum(['succeeded', 'failed', 'running', 'interrupted']),
  error: z.string().nullable(),
  calls: z.array(timelineCallSchema),
});

const backoffSchema = z.object({
  reason: z.enum(['retry-delay', 'circuit-open', 'children']),
  until: z.number().describe('When the next attempt was due'),
  connection: z.string().nullable().describe('circuit-open: the connection whose circuit was open'),
});

const attemptSchema = z.object({
  attempt: z.number().int().describe('The attempt number (a durable wait gives its attempt back)'),
  startedAt: z.number(),
  finishedAt: z.number().nullable().describe('Null while it runs'),
  ms: z.number().describe('Its time, to now while it runs'),
  outcome: z.enum([
    'succeeded',
    'failed',
    'retry',
    'wait',
    'lease-expired',
    'interrupted',
    'cancelled',
    'running',
  ]),
  error: z.object({ message: z.string(), code: z.string().nullable() }).nullable(),
  backoff: backoffSchema.nullable().describe('outcome retry: the wait before the next attempt'),
  steps: z.array(timelineStepSchema),
  calls: z.array(timelineCallSchema).describe('Calls made outside any step'),
});

const intervalSchema = z.object({
  kind: z.enum(['queued', 'held', 'backoff', 'circuit-open', 'children', 'wait', 'lease-expired']),
  from: z.number(),
  to: z.number().nullable().describe('Null: it goes on'),
  ms: z.number(),
  detail: z.string().describe('In words: why it waited'),
});

const runTimelineSchema = z.object({
  run: z.number().int(),
  from: rerunFrom.nullable(),
  status: z.enum(['running', ...FINAL]),
  acceptedAt: z
    .number()
    .describe("The run's start: the instance's acceptance for run 1, the rerun's time after"),
  finishedAt: z.number().nullable(),
  totalMs: z.number().describe('acceptedAt → finishedAt, or → now while unfinished'),
  runningMs: z.number().describe("Sum of the attempts' times"),
  waitingMs: z.number().describe('The rest: queued, backoff, circuit, durable waits, held'),
  carriedOver: z.array(z.string()).describe('Steps a rerun from the failed step took from the run before'),
  attempts: z.array(attemptSchema),
  intervals: z.array(intervalSchema).describe('The time between attempts (and before the first), as waited'),
});

export const timelineSchema = z.object({
  now: z.number().describe('When it was derived (open figures run to it)'),
  runs: z.array(runTimelineSchema),
});

const orderingHolderSchema = z.object({
  id: z.string(),
  integrationId: z.string(),
  status: instanceStatus,
});

const childCountsSchema = z.record(z.enum([...INSTANCE_STATUSES, 'total']), z.number().int());

export const waitingForSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('running'), since: z.number(), attempt: z.number().int() }),
  z.object({ kind: z.literal('ordering'), orderingKey: z.string(), holder: orderingHolderSchema }),
  z.object({
    kind: z.literal('retry'),
    at: z.number().describe('When the next attempt is due'),
    error: z.object({ message: z.string(), code: z.string().nullable() }),
  }),
  z.object({
    kind: z.literal('circuit'),
    connection: z.string(),
    until: z.number().nullable().describe('The next probe'),
  }),
  z.object({ kind: z.literal('worker'), since: z.number().describe('Due since') }),
  z.object({ kind: z.literal('scheduled'), at: z.number() }),
  z.object({
    kind: z.literal('wait'),
    wait: z.enum(['sleep', 'event', 'callback']),
    step: z.string(),
    until: z.number().nullable(),
    event: z.string().nullable(),
    match: z.record(z.string(), json).nullable(),
  }),
  z.object({
    kind: z.literal('children'),
    at: z.number().describe('Next check'),
    children: childCountsSchema,
  }),
]);

export const instanceDetailSchema = z.object({
  instance: instanceSchema,
  runs: z.array(runSchema),
  steps: z.array(stepSchema),
  events: z.array(eventSchema),
  waits: z
    .array(waitSchema)
    .describe('Its durable waits (ctx.sleep, ctx.waitForEvent, ctx.callback), every run'),
  timeline: timelineSchema.describe('Per run: attempts, steps, calls, waits and the time figures'),
  waitingFor: waitingForSchema
    .nullable()
    .describe('Why an unfinished instance is not done yet (null once final)'),
  children: childCountsSchema
    .nullable()
    .describe('Instances it started (a fan-out, a hand-off), by status; null: none'),
});

export const instancePageSchema = z.object({
  items: z.array(instanceSchema),
  nextCursor: z.string().nullable(),
});

export const acceptedSchema = z.object({
  instanceId: z.string(),
  status: instanceStatus,
  statusUrl: z.string().describe('Where the instance can be followed'),
});

export const rerunResultSchema = z.object({
  instanceId: z.string(),
  run: z.number().int(),
  status: instanceStatus,
});

export const bulkRerunResultSchema = z.object({
  count: z.number().int(),
  at: z.number().int().describe('When the reruns were queued: list them with `rerunSince`'),
  refused: z
    .array(
      z.object({
        instanceId: z.string(),
        code: z.string().describe('The reason as a code of the catalogue (docs/errors.md)'),
        reason: z.string(),
        status: instanceStatus.nullable().describe('Its status when refused; null: not found'),
      }),
    )
    .describe('Each instance left as it was, with the reason (by filter: the first 100 that match)'),
});

export const acknowledgeResultSchema = z.object({
  instanceId: z.string(),
  acknowledgedAt: z.number().nullable(),
  acknowledgedNote: z.string().nullable(),
});
export const cancelResultSchema = z.object({ instanceId: z.string(), status: instanceStatus });

/** The body of POST /api/events: a business event for `ctx.waitForEvent`. */
export const sendEventBody = z.strictObject({
  name: z.string().min(1).max(200).describe('The event name (`employee.created`)'),
  payload: json.optional().describe('Any JSON; waits match on its top-level fields. Default null'),
  id: z
    .string()
    .min(1)
    .max(200)
    .optional()
    .describe('Makes the send idempotent: an event with an id already received changes nothing'),
});

export const sentEventSchema = z.object({
  eventId: z.string().describe('The id given, or the sequence number the store gave the event'),
  duplicate: z
    .boolean()
    .describe('An event with this id was already received: nothing was stored or resumed'),
  resumed: z.array(z.string()).describe('Instances whose wait this event resolved'),
});

/** `POST /callbacks/:token`: the token is the last segment of the URL `ctx.callback()` handed out. */
export const callbackParams = z.strictObject({ token: z.string().min(1).max(300) });

export const callbackResultSchema = z.object({
  status: z.literal('resumed'),
  instanceId: z.string().describe('The instance the callback resumed'),
});

/** What starts an integration, by its definition (the picture adds the integrations that start it). */
export const definedTriggers = [
  z.object({
    type: z.literal('http'),
    method: z.string(),
    path: z.string(),
    auth: z.enum(['api-key', 'standard-webhooks', 'jwt']).nullable(),
  }),
  z.object({ type: z.literal('cron'), cron: z.string(), timezone: z.string().nullable() }),
  z.object({ type: z.literal('api') }),
] as const;

const triggerSchema = z.union(definedTriggers);

/** One piece of pattern advice, with the figures behind it. */
export const adviceSchema = z.object({
  kind: z.enum(['split-sync-to-async', 'sync-may-serve', 'check-connection']),
  message: z.string(),
  figures: z.record(z.string(), z.union([z.number(), z.string()])),
});

const integrationSummarySchema = z.object({
  id: z.string(),
  mode: z.enum(['sync', 'async', 'scheduled']),
  description: z.string().nullable(),
  triggers: z.array(triggerSchema),
  deadlineMs: z.number().nullable().describe('Sync: the deadline'),
  timeoutMs: z.number().nullable().describe('Async and scheduled: the per-attempt timeout'),
  counts: z.record(instanceStatus, z.number().int()),
  stats: z.object({
    total: z.number().int(),
    errorRate: z.number().nullable().describe('failed / (succeeded + failed); null before any finished'),
    windows: z
      .record(
        z.enum(['1h', '24h', '7d']),
        z.object({
          total: z.number().int(),
          succeeded: z.number().int(),
          failed: z.number().int(),
          successRate: z.number().nullable(),
          failureRate: z.number().nullable(),
          p50: z.number().nullable().describe('ms, nearest rank, of the durations of finished instances'),
          p95: z.number().nullable(),
          p99: z.number().nullable(),
          retriesPerInstance: z.number(),
        }),
      )
      .describe('Figures of the instances created in the last hour, day and week'),
  }),
  advice: z.array(adviceSchema).describe('Pattern advice from the measured figures'),
});

export const integrationListSchema = z.object({ items: z.array(integrationSummarySchema) });

export const healthSchema = z.object({ status: z.literal('ok') });

export const problemSchema = z.object({
  type: z.string().describe('urn:tandem:error:<code>; see docs/errors.md'),
  title: z.string(),
  status: z.number().int(),
  detail: z.string().optional(),
  instance: z.string().optional(),
  instanceId: z.string().optional(),
  errors: z
    .array(
      z.object({
        in: z.enum(['body', 'params', 'query', 'header']).optional(),
        path: z.string(),
        message: z.string(),
      }),
    )
    .optional(),
});

/** Filters of GET /api/activity. */
export const activityQuery = z.strictObject({
  integration: z.string().min(1).max(100).optional(),
  status: instanceStatus.optional(),
  tracking: z.string().min(1).max(200).optional(),
  /** Resume position when the client cannot send Last-Event-ID. `start` replays from the beginning. */
  after: z.string().max(64).optional(),
  access_token: z
    .string()
    .max(500)
    .optional()
    .describe('The admin token, for clients that cannot send an Authorization header (EventSource)'),
});

/** The three questions of POST /api/advisor/decide. */
export const decideBody = z.strictObject({
  immediateResponse: z.boolean().describe('Does the caller need an immediate response?'),
  finishesInSeconds: z.boolean().describe('Will everything finish in seconds?'),
  needsRerun: z.boolean().describe('Must a failure be retried or rerun later?'),
});

export const decisionSchema = z.object({
  pattern: z.enum(['sync', 'async', 'sync-to-async']),
  reasons: z.array(z.string()),
});

// ── The vocabulary's shapes are model.ts's: each schema above describes its type exactly ──────

/** `true` when A and B are the same type (each assignable to the other). */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const exactly = <T extends true>(): T | undefined => undefined;
exactly<Same<z.output<typeof errorInfo>, ErrorInfo>>();
exactly<Same<z.output<typeof instanceSchema>, Instance>>();
exactly<Same<z.output<typeof runSchema>, Run>>();
exactly<Same<z.output<typeof stepSchema>, Step>>();
exactly<Same<z.output<typeof eventSchema>, ActivityEvent>>();
exactly<Same<z.output<typeof waitSchema>, Wait>>();
