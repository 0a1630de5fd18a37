/**
 * Traces of Tandem's work, read with the SDK's in-memory exporter: which spans an async trigger, an
 * attempt, a step and a sync call make, how they nest, that an incoming traceparent is their parent
 * and the sync → async hand-off continues the caller's trace, that the trace id is stored with the
 * instance and shown by the API, and that attributes are masked as the stored records are.
 */
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineIntegration } from '../../src/define/integration.js';
import { STORE_KINDS, waitForStatus } from '../support/engine.js';
import { type TestServer, testServer } from '../support/server.js';
import { waitFor } from '../support/wait.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const CALLER_SPAN = '00f067aa0ba902b7';
const INCOMING = `00-${TRACE}-${CALLER_SPAN}-01`;
const CARD = '4111-1111-1111-1111';

function tracer() {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  return { exporter, provider };
}

const named = (spans: ReadableSpan[], name: string) => spans.filter((s) => s.name === name);
const parentOf = (span: ReadableSpan) => span.parentSpanContext?.spanId;

function integrations() {
  let failedOnce = false;
  const fulfil = defineIntegration({
    id: 'fulfil',
    mode: 'async',
    route: 'POST /orders',
    input: z.object({ orderId: z.string(), card: z.string().optional() }),
    redact: ['card'],
    track: { orderId: 'orderId', ref: (input) => `${input.orderId}/${input.card ?? ''}` },
    retry: { maxAttempts: 3, initialDelayMs: 10, jitter: 0 },
    async handler(ctx) {
      await ctx.step('reserve', () => ({ reserved: true }));
      if (ctx.input.card) await ctx.step(`charge ${ctx.input.card}`, () => 'charged');
      if (!failedOnce) {
        failedOnce = true;
        throw new Error(`flaky for card ${ctx.input.card ?? 'none'}`);
      }
      await ctx.step('ship', () => 'shipped');
      return { ok: true };
    },
  });
  const quote = defineIntegration({
    id: 'quote',
    mode: 'sync',
    route: 'POST /quotes',
    input: z.object({ orderId: z.string() }),
    track: { orderId: 'orderId' },
    async handler(ctx) {
      const { instanceId } = await ctx.start(fulfil, { orderId: `${ctx.input.orderId}-f` });
      return { quoted: true, child: instanceId };
    },
  });
  return [fulfil, quote];
}

let server: TestServer | null = null;
afterEach(async () => {
  await server?.close();
  server = null;
});

describe.each(STORE_KINDS)('traces on %s', (storeKind) => {
  it('makes accept, attempt and step spans under the trigger’s traceparent; the API shows the trace id', async () => {
    const { exporter, provider } = tracer();
    server = await testServer(integrations(), {}, { storeKind, tracing: { tracerProvider: provider } });
    const accepted = await server.request('/orders', {
      method: 'POST',
      json: { orderId: 'A-1' },
      headers: { traceparent: INCOMING },
    });
    expect(accepted.status).toBe(202);
    const id = accepted.json.instanceId as string;
    await waitForStatus(server.engine, id);
    const detail = await server.request(`/api/instances/${id}`);
    expect(detail.json.instance).toMatchObject({ status: 'succeeded', traceId: TRACE });

    const spans = await waitFor(() => {
      const all = exporter.getFinishedSpans();
      return named(all, 'attempt fulfil').length === 2 ? all : null;
    }, 'two attempt spans');
    expect(spans.every((s) => s.spanContext().traceId === TRACE)).toBe(true);
    const [accept] = named(spans, 'accept fulfil');
    expect(accept).toBeDefined();
    expect(accept!.kind).toBe(SpanKind.PRODUCER);
    expect(parentOf(accept!)).toBe(CALLER_SPAN);
    expect(accept!.attributes).toMatchObject({
      'tandem.instance.id': id,
      'tandem.integration.id': 'fulfil',
      'tandem.tracking.orderId': 'A-1',
    });
    const attempts = named(spans, 'attempt fulfil').sort(
      (a, b) => Number(a.attributes['tandem.attempt']) - Number(b.attributes['tandem.attempt']),
    );
    for (const attempt of attempts) {
      expect(attempt.kind).toBe(SpanKind.CONSUMER);
      expect(parentOf(attempt)).toBe(accept!.spanContext().spanId);
      expect(attempt.attributes).toMatchObject({
        'tandem.instance.id': id,
        'tandem.tracking.orderId': 'A-1',
      });
    }
    expect(attempts.map((a) => [a.attributes['tandem.attempt'], a.attributes['tandem.outcome']])).toEqual([
      [1, 'retry'],
      [2, 'succeeded'],
    ]);
    expect(attempts[0]!.status).toMatchObject({ code: SpanStatusCode.ERROR, message: 'flaky for card none' });
    // A step runs once: the second attempt reads 'reserve' back and runs only 'ship'.
    const reserve = named(spans, 'step reserve');
    const ship = named(spans, 'step ship');
    expect(reserve).toHaveLength(1);
    expect(ship).toHaveLength(1);
    expect(parentOf(reserve[0]!)).toBe(attempts[0]!.spanContext().spanId);
    expect(parentOf(ship[0]!)).toBe(attempts[1]!.spanContext().spanId);
  });

  it('continues the caller’s trace in a sync call and hands it to the children it starts', async () => {
    const { exporter, provider } = tracer();
    server = await testServer(integrations(), {}, { storeKind, tracing: { tracerProvider: provider } });
    const answer = await server.request('/quotes', {
      method: 'POST',
      json: { orderId: 'Q-1' },
      headers: { traceparent: INCOMING },
    });
    expect(answer.status).toBe(200);
    const child = answer.json.child as string;
    await waitForStatus(server.engine, child);
    const spans = await waitFor(() => {
      const all = exporter.getFinishedSpans();
      return named(all, 'attempt fulfil').length === 2 ? all : null;
    }, 'the child’s attempts');
    const [sync] = named(spans, 'sync quote');
    expect(sync!.kind).toBe(SpanKind.SERVER);
    expect(sync!.spanContext().traceId).toBe(TRACE);
    expect(parentOf(sync!)).toBe(CALLER_SPAN);
    expect(sync!.attributes).toMatchObject({
      'tandem.tracking.orderId': 'Q-1',
      'tandem.outcome': 'succeeded',
    });
    // The child is accepted inside the call: its attempts are spans of the call's trace, under it.
    expect(named(spans, 'accept fulfil')).toHaveLength(0);
    for (const attempt of named(spans, 'attempt fulfil')) {
      expect(attempt.spanContext().traceId).toBe(TRACE);
      expect(parentOf(attempt)).toBe(sync!.spanContext().spanId);
      expect(attempt.attributes['tandem.parent.id']).toBe(sync!.attributes['tandem.instance.id']);
    }
    expect((await server.engine.getInstance(child)).traceId).toBe(TRACE);
    // The call's own record (written off the response path) shows the trace too.
    const syncId = answer.headers.get('tandem-instance-id')!;
    expect(sync!.attributes['tandem.instance.id']).toBe(syncId);
    const record = await waitFor(
      () => server!.engine.getInstance(syncId).catch(() => null),
      'the sync record',
    );
    expect(record.traceId).toBe(TRACE);
  });

  it('masks redacted values in span names, attributes and error messages', async () => {
    const { exporter, provider } = tracer();
    server = await testServer(integrations(), {}, { storeKind, tracing: { tracerProvider: provider } });
    const accepted = await server.request('/orders', {
      method: 'POST',
      json: { orderId: 'R-1', card: CARD },
    });
    await waitForStatus(server.engine, accepted.json.instanceId);
    const spans = await waitFor(() => {
      const all = exporter.getFinishedSpans();
      return named(all, 'attempt fulfil').length === 2 ? all : null;
    }, 'two attempt spans');
    const text = JSON.stringify(
      spans.map((s) => ({ name: s.name, attributes: s.attributes, status: s.status, events: s.events })),
    );
    expect(text).not.toContain(CARD);
    expect(named(spans, 'step charge [redacted]')).toHaveLength(1);
    expect(named(spans, 'accept fulfil')[0]!.attributes['tandem.tracking.ref']).toBe('R-1/[redacted]');
    expect(text).toContain('flaky for card [redacted]');
  });
});
