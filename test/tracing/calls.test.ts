/**
 * Connection calls in traces: with tracing, each call is a client span under its step (or the
 * attempt, or the sync call) and the application receives that span's traceparent; without
 * tracing no span is made, and calls still carry the trace the instance was accepted with.
 */
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { httpConnection } from '../../src/connections/http.js';
import { defineIntegration } from '../../src/define/integration.js';
import { parseTraceparent } from '../../src/tracing/traceparent.js';
import { appServer, json } from '../support/app-server.js';
import { STORE_KINDS, testEngine, waitForStatus } from '../support/engine.js';
import { type TestServer, testServer } from '../support/server.js';
import { waitFor } from '../support/wait.js';

const TRACE = '5bf92f3577b34da6a3ce929d0e0e4737';
const INCOMING = `00-${TRACE}-10f067aa0ba902b7-01`;

let app: Awaited<ReturnType<typeof appServer>>;
beforeAll(async () => {
  app = await appServer((request, response) => {
    if (request.url.startsWith('/fail')) json(response, 503, { error: 'busy' });
    else json(response, 200, { ok: true });
  });
});
afterAll(async () => {
  await app.close();
});

let server: TestServer | null = null;
afterEach(async () => {
  await server?.close();
  server = null;
  app.seen.length = 0;
});

function integrations() {
  const erp = httpConnection('erp', { baseUrl: app.url, circuit: false });
  const order = defineIntegration({
    id: 'order',
    mode: 'async',
    route: 'POST /orders',
    retry: { maxAttempts: 1 },
    async handler(ctx) {
      await ctx.step('reserve', () => ctx.call(erp, 'POST', '/reserve', { json: {} }));
      await ctx.call(erp, 'GET', '/status');
      return 'ok';
    },
  });
  const lookup = defineIntegration({
    id: 'lookup',
    mode: 'sync',
    route: 'POST /lookup',
    async handler(ctx) {
      await ctx.call(erp, 'GET', '/fail').catch(() => null);
      return { looked: true };
    },
  });
  return { connections: [erp], list: [order, lookup] };
}

const sent = (path: string) => {
  const request = app.seen.find((r) => r.url.startsWith(path));
  return parseTraceparent(request?.headers.traceparent);
};

describe.each(STORE_KINDS)('connection calls in traces on %s', (storeKind) => {
  it('makes a client span per call, under its step or the attempt, and sends its traceparent downstream', async () => {
    const exporter = new InMemorySpanExporter();
    const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
    const { connections, list } = integrations();
    server = await testServer(list, {}, { storeKind, connections, tracing: { tracerProvider: provider } });
    const accepted = await server.request('/orders', { method: 'POST', headers: { traceparent: INCOMING } });
    await waitForStatus(server.engine, accepted.json.instanceId);
    const spans = await waitFor(() => {
      const all = exporter.getFinishedSpans();
      return all.some((s) => s.name === 'attempt order') ? all : null;
    }, 'the attempt span');
    const byName = (name: string) => spans.find((s) => s.name === name)!;
    const [attempt, step, reserve, status] = [
      byName('attempt order'),
      byName('step reserve'),
      byName('call erp POST'),
      byName('call erp GET'),
    ];
    expect(reserve.kind).toBe(SpanKind.CLIENT);
    expect(reserve.parentSpanContext?.spanId).toBe(step.spanContext().spanId);
    expect(status.parentSpanContext?.spanId).toBe(attempt.spanContext().spanId);
    expect(reserve.attributes).toMatchObject({
      'tandem.connection': 'erp',
      'http.request.method': 'POST',
      'http.response.status_code': 200,
      'tandem.step': 'reserve',
    });
    // The application sees each call's own span as its parent, in the caller's trace.
    expect(sent('/reserve')).toMatchObject({ traceId: TRACE, spanId: reserve.spanContext().spanId });
    expect(sent('/status')).toMatchObject({ traceId: TRACE, spanId: status.spanContext().spanId });

    const answer = await server.request('/lookup', { method: 'POST', headers: { traceparent: INCOMING } });
    expect(answer.status).toBe(200);
    const failed = await waitFor(
      () => exporter.getFinishedSpans().find((s) => s.name === 'call erp GET' && s !== status),
      'the sync call’s call span',
    );
    const sync = exporter.getFinishedSpans().find((s) => s.name === 'sync lookup')!;
    expect(failed.parentSpanContext?.spanId).toBe(sync.spanContext().spanId);
    expect(failed.status).toMatchObject({ code: SpanStatusCode.ERROR, message: 'http-503' });
    expect(sent('/fail')).toMatchObject({ traceId: TRACE, spanId: failed.spanContext().spanId });
  });

  it('without tracing makes no span, and calls carry the trace the instance was accepted with', async () => {
    const { connections, list } = integrations();
    const base = await testEngine(list, { storeKind, connections });
    try {
      expect(base.engine.tracing).toBeNull();
      const { instanceId } = await base.engine.accept('order', {}, { traceparent: INCOMING });
      await waitForStatus(base.engine, instanceId);
      expect((await base.engine.getInstance(instanceId)).traceId).toBe(TRACE);
      expect(sent('/reserve')?.traceId).toBe(TRACE);
      expect(sent('/status')?.traceId).toBe(TRACE);
      // Accepted without one: no trace id stored, and each attempt's calls share a fresh trace.
      app.seen.length = 0;
      const plain = await base.engine.accept('order', {});
      await waitForStatus(base.engine, plain.instanceId);
      expect((await base.engine.getInstance(plain.instanceId)).traceId).toBeNull();
      const fresh = sent('/reserve')!.traceId;
      expect(fresh).not.toBe(TRACE);
      expect(sent('/status')!.traceId).toBe(fresh);
    } finally {
      await base.close();
    }
  });
});

describe('incoming traceparent values', () => {
  it('stores a valid one normalised and ignores one that is not valid, accepting the request either way', async () => {
    const { connections, list } = integrations();
    server = await testServer(list, {}, { connections });
    const cases: [string, string | null][] = [
      [INCOMING.toUpperCase(), null],
      [`00-${TRACE}-10f067aa0ba902b7-03`, TRACE],
      [`01-${TRACE}-10f067aa0ba902b7-01-later`, TRACE],
      [`00-${TRACE}-10f067aa0ba902b7-01-extra`, null],
      [`ff-${TRACE}-10f067aa0ba902b7-01`, null],
      [`00-${'0'.repeat(32)}-10f067aa0ba902b7-01`, null],
      [`00-${TRACE}-${'0'.repeat(16)}-01`, null],
      ['garbage', null],
      [`01-${TRACE}-10f067aa0ba902b7-01-${'x'.repeat(600)}`, null],
    ];
    for (const [header, traceId] of cases) {
      const accepted = await server.request('/orders', { method: 'POST', headers: { traceparent: header } });
      expect(accepted.status, header).toBe(202);
      const instance = await server.engine.getInstance(accepted.json.instanceId);
      expect(instance.traceId, header).toBe(traceId);
    }
  });
});
