/** Shapes of the operations views of the management API: connections, schedules, grouped errors. */
import { z } from 'zod';
import { INSTANCE_STATUSES } from '../../lifecycle/names.js';

export const connectionListSchema = z.object({
  items: z.array(
    z.object({
      id: z.string(),
      type: z.enum(['http', 'sftp', 'postgres', 'smtp']).describe('Kind of connection'),
      baseUrl: z
        .string()
        .describe("Where it connects to, without credentials: the base URL's origin for HTTP"),
      circuit: z.enum(['closed', 'half-open', 'open']),
      calls: z.number().int().describe('Calls since the server started'),
      failures: z.number().int().describe('Calls without an answer or with a status of 400 and above'),
      failureRate: z.number().nullable(),
      p50: z.number().nullable().describe('ms, nearest rank, of the last 512 calls'),
      p95: z.number().nullable(),
      p99: z.number().nullable(),
      lastStatus: z.number().int().nullable(),
      lastCallAt: z.number().nullable(),
    }),
  ),
});

export const scheduleListSchema = z.object({
  items: z.array(
    z.object({
      integrationId: z.string(),
      cron: z.string(),
      timezone: z.string(),
      overlap: z.enum(['skip', 'queue']),
      catchUp: z.enum(['none', 'last']),
      parameters: z.record(z.string(), z.unknown()).describe('What the next instance will see'),
      storedParameters: z.record(z.string(), z.unknown()),
      nextSlotAt: z.number().nullable(),
      nextSlots: z.array(z.number()).describe('The next five firings (ms since the epoch)'),
      lastSlotAt: z.number().nullable().describe('The latest cron slot handled (fired or skipped)'),
      lastFiring: z
        .object({
          at: z.number().describe('When its instance was created'),
          instanceId: z.string(),
          by: z.enum(['schedule', 'run-now']).describe('A cron slot, or a run-now (API or console)'),
        })
        .nullable()
        .describe('The newest instance, however it was started; null: none yet'),
      recentSlots: z.array(
        z.object({
          integrationId: z.string(),
          slotAt: z.number(),
          outcome: z.enum(['fired', 'skipped']),
          instanceId: z.string().nullable(),
          at: z.number(),
        }),
      ),
    }),
  ),
});

export const errorGroupsQuery = z.strictObject({
  integration: z.string().min(1).max(100).optional().describe('Only this integration'),
  acknowledged: z
    .enum(['hide', 'show', 'only'])
    .default('hide')
    .describe('Acknowledged failures: left out (default), shown as well, or shown alone'),
});

/** Why an instance was left as it was by a bulk operation. */
const refusalSchema = z.object({
  instanceId: z.string(),
  code: z.string().describe('The reason as a code of the catalogue (docs/errors.md)'),
  reason: z.string(),
  status: z.enum(INSTANCE_STATUSES).nullable().describe('Its status when refused; null: not found'),
});

const errorGroup = z.object({
  key: z.string().describe('Names the group for POST /api/errors/acknowledge'),
  integrationId: z.string(),
  mode: z.enum(['sync', 'async', 'scheduled']),
  code: z
    .string()
    .nullable()
    .describe(
      "The error code; a connection's circuit-open failures join its other failures of the same integration and step",
    ),
  codes: z.record(z.string(), z.number().int()).describe('The failures by their own error code'),
  name: z.string().describe("The newest failure's error name"),
  step: z.string().nullable().describe('The step the runs failed in; null: outside any step'),
  connection: z.string().nullable().describe('The connection the error came from; null: none'),
  count: z.number().int(),
  acknowledged: z.number().int().describe('How many of them are acknowledged (when they are shown)'),
  firstAt: z.number(),
  latestAt: z.number(),
  examples: z
    .array(z.object({ message: z.string(), count: z.number().int(), instanceId: z.string() }))
    .describe('Up to three distinct messages (digits aside), most frequent first: the newest text of each'),
  instanceIds: z.array(z.string()).describe('Newest first'),
  rerun: z.object({
    possible: z.boolean(),
    reason: z.string().nullable().describe('Why the group cannot be rerun; null when it can'),
  }),
});

export const errorGroupsSchema = z.object({
  groups: z.array(errorGroup),
  scanned: z.number().int().describe('Failed instances read, newest first'),
  truncated: z.boolean().describe('True when there are more failed instances than were read'),
});

export const acknowledgeGroupsBody = z
  .strictObject({
    keys: z.array(z.string().min(1).max(2000)).min(1).max(100).optional().describe('Group keys'),
    ids: z.array(z.string().min(1).max(100)).min(1).max(1000).optional().describe('Instance ids'),
    acknowledged: z.boolean().default(true).describe('False: take the acknowledgement back'),
    note: z.string().max(500).optional(),
  })
  .refine((body) => (body.keys === undefined) !== (body.ids === undefined), {
    message: 'Give exactly one of keys and ids',
    path: ['keys'],
  });

export const acknowledgeGroupsResultSchema = z.object({
  count: z.number().int().describe('Instances acknowledged (or taken back)'),
  refused: z.array(refusalSchema),
});

// ── The overview, and running an integration from the console ───────────────────────────────

const status = z.enum(INSTANCE_STATUSES);

export const overviewQuery = z.strictObject({
  window: z
    .enum(['hour', 'day'])
    .default('hour')
    .describe('`hour`: a bucket per minute over the last hour; `day`: a bucket per hour over the last day'),
});

export const overviewSchema = z.object({
  window: z.enum(['hour', 'day']),
  bucketMs: z.number().int().describe('60000 (hour) or 3600000 (day)'),
  since: z
    .number()
    .describe('Start of the first bucket (ms since the epoch; buckets start on whole UTC minutes or hours)'),
  until: z.number().describe('The time of the answer: the last bucket is the current one, still filling'),
  buckets: z
    .array(
      z.object({
        start: z.number().describe('ms since the epoch'),
        accepted: z.number().int().describe('Instances created in the bucket (every mode)'),
        succeeded: z.number().int().describe('Of those, succeeded by now'),
        failed: z.number().int().describe('Of those, failed by now'),
        p95: z
          .number()
          .nullable()
          .describe('ms, nearest rank, of the durations of those finished; null when none finished'),
      }),
    )
    .describe('Every bucket of the window, oldest first, from the stored instances'),
  backlog: z.number().int().describe('Queued or retrying instances due now: waiting for a worker'),
  queued: z.number().int(),
  running: z.number().int(),
  retrying: z.number().int(),
  waiting: z.number().int().describe('Waiting durably (a sleep, an event, a callback)'),
  oldestUnfinished: z
    .object({
      id: z.string(),
      integrationId: z.string(),
      status,
      since: z.number().describe('When its current run started'),
      ageMs: z.number(),
    })
    .nullable()
    .describe('The unfinished instance whose current run started first'),
});

/** A JSON Schema (2020-12) document. */
const jsonSchema = z.record(z.string(), z.unknown());

export const integrationInputSchema = z.object({
  integrationId: z.string(),
  mode: z.enum(['sync', 'async', 'scheduled']),
  input: jsonSchema.nullable().describe("The integration's input as JSON Schema; null: it declares none"),
  body: jsonSchema.describe(
    'The body to run it with: async, its input (POST /api/integrations/:id/run); scheduled, `{ parameters }` (the same route); sync, `{ params, query, input }` (POST /api/integrations/:id/call)',
  ),
});

export const sourceQuery = z.strictObject({
  source: z
    .enum(['console'])
    .optional()
    .describe("Recorded in the new instance's `accepted` event: started by an operator from the console"),
});

export const syncCallBody = z.strictObject({
  params: z.record(z.string(), z.string()).optional().describe("The route's path parameters"),
  query: z
    .record(z.string(), z.union([z.string(), z.array(z.string())]))
    .optional()
    .describe('The query string, as its route would receive it'),
  input: z.unknown().optional().describe('The request body (JSON)'),
});

export const syncCallResultSchema = z.object({
  instanceId: z.string().describe('The sync instance recorded for the call'),
  status: z.number().int().describe('The status its route would have answered'),
  contentType: z.string().nullable(),
  headers: z.record(z.string(), z.string()).describe('Headers the handler set'),
  body: z
    .unknown()
    .describe('The answer: parsed JSON, text, or (a failure) the problem document; null for none'),
});
