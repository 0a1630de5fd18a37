/** Shapes of the operations views of the management API: connections, schedules, grouped errors. */
import { z } from 'zod';

export const connectionListSchema = z.object({
  items: z.array(
    z.object({
      id: z.string(),
      baseUrl: z.string().describe('Origin of the base URL'),
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
});

export const errorGroupsSchema = z.object({
  groups: z.array(
    z.object({
      integrationId: z.string(),
      name: z.string(),
      message: z.string(),
      code: z.string().nullable(),
      count: z.number().int(),
      latestAt: z.number(),
      instanceIds: z.array(z.string()).describe('Newest first'),
    }),
  ),
  scanned: z.number().int().describe('Failed instances read, newest first'),
  truncated: z.boolean().describe('True when there are more failed instances than were read'),
});
