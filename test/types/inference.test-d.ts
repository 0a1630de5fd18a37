/**
 * The types integration authors rely on, checked by the compiler: `npm run typecheck` (the first
 * step of `npm test`) compiles this file with the rest of test/. Every inferred type has a
 * negative case: an `@ts-expect-error` line that stops compiling (as an unused directive) the
 * moment the type is widened again. Nothing here runs.
 */
import { expectTypeOf } from 'vitest';
import { z } from 'zod';
import type { ScheduledInput } from '../../src/define/integration.js';
import {
  defineIntegration,
  type FanOutResult,
  type Integration,
  type IntegrationInput,
  type StartedInstance,
} from '../../src/define/integration.js';
import type { SyncResult } from '../../src/server/sync-response.js';
import { csvSource } from '../../src/sources/csv.js';

const Order = z.object({
  orderId: z.string(),
  quantity: z.coerce.number().int(),
  note: z.string().optional(),
});
type OrderIn = z.input<typeof Order>;
type OrderOut = z.output<typeof Order>;

/** A child with an input schema: what ctx.start / ctx.startMany must be given. */
const fulfil = defineIntegration({ id: 'fulfil', mode: 'async', input: Order, handler: () => 'done' });
/** A child without a schema takes any JSON. */
const loose = defineIntegration({ id: 'loose', mode: 'async', handler: () => {} });

// ctx.input: the output of the input schema (transforms applied).
defineIntegration({
  id: 'typed-input',
  mode: 'async',
  input: z.object({ orderId: z.string(), total: z.string().transform(Number) }),
  handler(ctx) {
    expectTypeOf(ctx.input).toEqualTypeOf<{ orderId: string; total: number }>();
    // @ts-expect-error: a field the schema does not declare
    ctx.input.customer;
    // @ts-expect-error: the transformed type, not the wire type
    const total: string = ctx.input.total;
    return total;
  },
});

// Route params and query: from their schemas, else strings by name and parsed values.
defineIntegration({
  id: 'typed-route',
  mode: 'sync',
  route: 'GET /stock/:sku',
  params: z.object({ sku: z.string().min(1) }),
  query: z.object({ limit: z.coerce.number().default(10), warehouse: z.string().optional() }),
  handler(ctx) {
    expectTypeOf(ctx.params).toEqualTypeOf<{ sku: string }>();
    expectTypeOf(ctx.query).toEqualTypeOf<{ limit: number; warehouse?: string | undefined }>();
    // @ts-expect-error: no such path parameter
    ctx.params.account;
    // @ts-expect-error: the query's limit is a number once coerced
    const limit: string = ctx.query.limit;
    return limit;
  },
});
defineIntegration({
  id: 'untyped-route',
  mode: 'sync',
  route: 'GET /accounts/:account',
  handler(ctx) {
    expectTypeOf(ctx.params).toEqualTypeOf<Record<string, string>>();
    expectTypeOf(ctx.query).toEqualTypeOf<Record<string, unknown>>();
    // @ts-expect-error: path parameters are strings
    const account: number = ctx.params.account;
    return account;
  },
});

// Scheduled parameters: typed by their defaults; setParameters takes a part of them.
defineIntegration({
  id: 'typed-parameters',
  mode: 'scheduled',
  cron: '0 2 * * *',
  parameters: { lastRunAt: null as string | null, limit: 100 },
  handler(ctx) {
    expectTypeOf(ctx.parameters).toEqualTypeOf<Readonly<{ lastRunAt: string | null; limit: number }>>();
    expectTypeOf(ctx.input).toEqualTypeOf<ScheduledInput>();
    ctx.setParameters({ lastRunAt: new Date().toISOString() });
    ctx.setParameters({ limit: 50 });
    // @ts-expect-error: the limit is a number
    ctx.setParameters({ limit: 'fifty' });
    // @ts-expect-error: not a declared parameter
    ctx.parameters.offset;
  },
});

// Step results: the value the function returns (awaited).
defineIntegration({
  id: 'typed-steps',
  mode: 'async',
  async handler(ctx) {
    const count = await ctx.step('count', () => 42);
    const account = await ctx.step('create', async () => ({ accountId: 'acc-1' }));
    expectTypeOf(count).toEqualTypeOf<number>();
    expectTypeOf(account).toEqualTypeOf<{ accountId: string }>();
    // @ts-expect-error: the step returned a number
    const text: string = await ctx.step('again', () => 42);
    return text;
  },
});

// ctx.start / ctx.startMany: the child's schema input; a missing field or a string does not compile.
expectTypeOf<IntegrationInput<typeof fulfil>>().toEqualTypeOf<OrderIn>();
defineIntegration({
  id: 'typed-starts',
  mode: 'async',
  input: Order,
  async handler(ctx) {
    const one = await ctx.start(fulfil, { orderId: 'A-1', quantity: 2 });
    expectTypeOf(one).toEqualTypeOf<StartedInstance>();
    await ctx.start(fulfil, ctx.input);
    await ctx.start(fulfil, { orderId: 'A-2', quantity: '3' }); // coerced: the schema's input is unknown
    // @ts-expect-error: orderId is missing
    await ctx.start(fulfil, { quantity: 1 });
    // @ts-expect-error: a string is not the child's input
    await ctx.start(fulfil, 'A-1');
    // @ts-expect-error: orderId is a string
    await ctx.start(fulfil, { orderId: 7, quantity: 1 });
    await ctx.start(loose, { anything: ['json', 1, null] });
    // @ts-expect-error: a child without a schema still takes JSON only
    await ctx.start(loose, { when: new Date() });
    // An id names the child at run time only: its input is checked there.
    await ctx.start('fulfil', 'anything');

    const many = await ctx.startMany(fulfil, [{ orderId: 'B-1', quantity: 1 }]);
    expectTypeOf(many).toEqualTypeOf<FanOutResult>();
    // @ts-expect-error: orderId is missing in an element
    await ctx.startMany(fulfil, [{ orderId: 'B-2', quantity: 1 }, { quantity: 2 }]);
    // @ts-expect-error: strings are not the child's input
    await ctx.startMany(fulfil, ['B-3']);
    // A source validated by the child's own schema yields its output, which the child takes as is.
    await ctx.startMany(fulfil, csvSource('./orders.csv', { schema: Order }), { await: 'children' });
    // @ts-expect-error: a source of other records
    await ctx.startMany(fulfil, csvSource('./stock.csv', { schema: z.object({ sku: z.string() }) }));
    async function* generated() {
      yield { orderId: 'C-1', quantity: 1 } satisfies OrderIn;
    }
    await ctx.startMany(fulfil, generated());
    expectTypeOf<OrderOut>().toExtend<OrderIn>();
  },
});

// Sync results: a sync handler's starts are buffered and report no children's counts.
defineIntegration({
  id: 'typed-sync-starts',
  mode: 'sync',
  route: 'POST /orders',
  input: Order,
  async handler(ctx) {
    const started = await ctx.start(fulfil, ctx.input);
    expectTypeOf(started).toEqualTypeOf<StartedInstance>();
    // @ts-expect-error: the child's input, not a string
    await ctx.start(fulfil, ctx.input.orderId);
    const many = await ctx.startMany(fulfil, [ctx.input]);
    expectTypeOf(many).toEqualTypeOf<{ count: number; created: number }>();
    // @ts-expect-error: waiting for children is for async handlers
    many.children;
    return { status: 201, headers: { location: `/orders/${started.instanceId}` }, body: started };
  },
});
declare const result: SyncResult;
if (result.ok) {
  expectTypeOf(result.status).toEqualTypeOf<number>();
  expectTypeOf(result.instanceId).toEqualTypeOf<string>();
} else {
  expectTypeOf(result.error.status).toEqualTypeOf<number>();
  // @ts-expect-error: a failure carries an error, not an answer's headers
  result.headers;
}

// The defined integration keeps its schema types for callers.
expectTypeOf(fulfil).toExtend<Integration<typeof Order>>();
