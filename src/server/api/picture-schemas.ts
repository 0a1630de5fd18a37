/**
 * The shape of an integration's picture (GET /api/integrations/:id/picture): what starts it, its
 * pattern, its steps in order with the connections each calls, and the figures of each step over
 * its recent instances. Only zod here, so that the console can take its types from it.
 */
import { z } from 'zod';
import { adviceSchema, definedTriggers } from './schemas.js';

const connectionUse = z.object({
  id: z.string().describe('The connection'),
  calls: z.number().int().describe('Calls recorded in the recent instances'),
  failures: z.number().int().describe('Calls without an answer or with a status of 400 and above'),
});

export const pictureSchema = z.object({
  integrationId: z.string(),
  mode: z.enum(['sync', 'async', 'scheduled']),
  description: z.string().nullable(),
  pattern: z
    .enum(['sync', 'sync-to-async', 'async', 'scheduled'])
    .describe('`sync-to-async`: a sync integration whose instances started async work (its children)'),
  triggers: z.array(
    z.union([
      ...definedTriggers,
      z.object({
        type: z.literal('parent'),
        integrationId: z.string().describe('An integration whose instances started recent ones'),
        instances: z.number().int().describe('Recent instances it started'),
      }),
    ]),
  ),
  children: z
    .array(
      z.object({
        integrationId: z.string(),
        mode: z.enum(['sync', 'async', 'scheduled']).nullable().describe('Null: no longer defined'),
        instances: z
          .number()
          .int()
          .describe('Children of the recent instances (at most 100 read per parent)'),
        parents: z.number().int().describe('Recent instances that started at least one'),
      }),
    )
    .describe('The integrations the recent instances started: a hand-off or a fan-out'),
  steps: z
    .array(
      z.object({
        name: z.string(),
        kind: z.enum(['step', 'wait']),
        waitKind: z.enum(['sleep', 'event', 'callback']).nullable(),
        instances: z.number().int().describe('Recent instances that reached it'),
        executions: z
          .number()
          .int()
          .describe('Step: times it ran (each attempt counts); wait: times it was reached'),
        failures: z.number().int().describe('Step: executions that failed; wait: waits that timed out'),
        failureShare: z.number().nullable().describe('failures / finished executions; null: none finished'),
        p50: z
          .number()
          .nullable()
          .describe('ms, nearest rank: a step’s execution time, or how long a wait waited'),
        p95: z.number().nullable(),
        connections: z.array(connectionUse),
      }),
    )
    .describe('In the order most recent runs took them (steps and durable waits)'),
  outsideSteps: z.array(connectionUse).describe('Connections called by the handler outside any step'),
  recent: z
    .object({
      limit: z.number().int(),
      instances: z.number().int(),
      runs: z.number().int().describe('Their runs: one each, and one more per rerun'),
      from: z.number().nullable().describe('Creation time of the oldest instance read'),
      to: z.number().nullable().describe('Creation time of the newest instance read'),
    })
    .describe('The figures come from the newest `limit` instances of the integration, every run'),
  advice: z.array(adviceSchema).describe('Pattern advice from the figures of the last 24 h'),
});
