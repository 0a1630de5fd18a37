import { SpanStatusCode } from '@opentelemetry/api';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { afterEach, describe, expect, it } from 'vitest';
import { makeCaller } from '../../src/connections/caller.js';
import {
  type BindableConnection,
  type CallContext,
  CONNECTION,
  ConnectionError,
} from '../../src/connections/connection.js';
import { ConnectionGuard, type GuardOptions } from '../../src/connections/guard.js';
import { httpConnection } from '../../src/connections/http.js';
import { defineConfig } from '../../src/define/config.js';
import { defineIntegration } from '../../src/define/integration.js';
import type { Json } from '../../src/model.js';
import type { LimitStore } from '../../src/store/store.js';
import { Tracing } from '../../src/tracing/tracing.js';
import { STORE_KINDS, testEngine, testStore, waitForStatus } from '../support/engine.js';

type Mode = 'ok' | 'refused' | 'reset' | 'denied' | 'hang';

/**
 * A connection kind made for the test on the guard, as SFTP, SQL and e-mail are: `ping(n)` answers
 * `n * 2`, or fails the way `mode` says.
 */
class PingConnection implements BindableConnection<{ ping(n: number): Promise<number> }> {
  readonly type = 'sftp' as const;
  readonly [CONNECTION] = true;
  readonly target = 'ping://local';
  readonly guard: ConnectionGuard;
  mode: Mode = 'ok';
  inFlight = 0;
  maxInFlight = 0;
  readonly keys: string[] = [];
  constructor(
    readonly id: string,
    options: GuardOptions = {},
  ) {
    this.guard = new ConnectionGuard(id, this.type, options, 4);
  }
  watch(listener: Parameters<ConnectionGuard['watch']>[0]) {
    return this.guard.watch(listener);
  }
  circuitState(now?: number) {
    return this.guard.circuitState(now);
  }
  async close() {}
  shareLimits(store: LimitStore, onError: (error: unknown) => void) {
    return this.guard.shareLimits(store, onError);
  }
  ping(context: CallContext, n: number): Promise<number> {
    this.keys.push(context.idempotencyKey);
    return this.guard.run(
      context,
      { operation: 'ping', n },
      async (signal) => {
        this.inFlight++;
        this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
        try {
          await new Promise<void>((resolve, reject) => {
            if (this.mode !== 'hang') return setTimeout(resolve, 5);
            signal.addEventListener('abort', () => reject(signal.reason), { once: true });
          });
          if (this.mode === 'ok' || this.mode === 'hang') return n * 2;
          throw Object.assign(new Error(this.mode), { code: this.mode });
        } finally {
          this.inFlight--;
        }
      },
      (thrown) => {
        const code = (thrown as { code: string }).code;
        const retryable = code !== 'denied';
        return {
          error: new ConnectionError(`ping ${code}`, this.id, this.type, code, retryable, { code }),
          retryable,
          notSent: code === 'refused',
          reason: code,
        };
      },
      (value): Record<string, Json> => ({ answer: value }),
    );
  }
  bind(next: () => CallContext) {
    return { ping: (n: number) => this.ping(next(), n) };
  }
}

function context(events: Record<string, Json>[], signal = new AbortController().signal): CallContext {
  return {
    instanceId: 'i-1',
    attempt: 1,
    signal,
    idempotencyKey: 'i-1:s:0',
    traceparent: `00-${'1'.repeat(32)}-${'2'.repeat(16)}-01`,
    step: 's',
    record: (data) => events.push(data),
  };
}

describe('the connection guard', () => {
  it('records one event per operation with its outcome, and tells watchers', async () => {
    const ping = new PingConnection('ping');
    const events: Record<string, Json>[] = [];
    const outcomes: boolean[] = [];
    ping.watch(({ ok }) => outcomes.push(ok));
    expect(await ping.ping(context(events), 21)).toBe(42);
    ping.mode = 'denied';
    await expect(ping.ping(context(events), 1)).rejects.toMatchObject({
      name: 'ConnectionError',
      code: 'denied',
      retryable: false,
    });
    expect(events).toEqual([
      expect.objectContaining({
        connection: 'ping',
        type: 'sftp',
        operation: 'ping',
        n: 21,
        answer: 42,
        step: 's',
        attempt: 1,
      }),
      expect.objectContaining({ connection: 'ping', operation: 'ping', n: 1, error: 'denied' }),
    ]);
    expect(typeof events[0]!.durationMs).toBe('number');
    expect(events[1]).not.toHaveProperty('answer');
    expect(outcomes).toEqual([true, false]);
  });

  it('opens the circuit on retryable failures; one that never reached the other side parks the caller', async () => {
    const ping = new PingConnection('ping', { circuit: { failures: 2, reprobeMs: 60_000 } });
    const events: Record<string, Json>[] = [];
    ping.mode = 'denied'; // not retryable: says nothing about the other side's health
    for (let i = 0; i < 3; i++)
      await expect(ping.ping(context(events), 1)).rejects.toMatchObject({ code: 'denied' });
    expect(ping.circuitState()).toBe('closed');
    ping.mode = 'reset'; // may have reached it: the attempt counts, the error is the failure itself
    await expect(ping.ping(context(events), 1)).rejects.toMatchObject({ code: 'reset' });
    ping.mode = 'refused';
    await expect(ping.ping(context(events), 1)).rejects.toMatchObject({
      name: 'CircuitOpenError',
      code: 'circuit-open',
    });
    expect(ping.circuitState()).toBe('open');
    ping.mode = 'ok';
    await expect(ping.ping(context(events), 1)).rejects.toMatchObject({ name: 'CircuitOpenError' });
    // The refused call while open never ran: five operations ran, five events.
    expect(events).toHaveLength(5);
  });

  it('holds the concurrency limit and records an abort by its code', async () => {
    const ping = new PingConnection('ping', { maxConcurrency: 2 });
    const events: Record<string, Json>[] = [];
    await Promise.all(Array.from({ length: 10 }, (_, i) => ping.ping(context(events), i)));
    expect(ping.maxInFlight).toBe(2);
    ping.mode = 'hang';
    const controller = new AbortController();
    const pending = ping.ping(context(events, controller.signal), 1);
    setTimeout(() => controller.abort(Object.assign(new Error('cancelled'), { code: 'cancelled' })), 20);
    await expect(pending).rejects.toThrow('cancelled');
    expect(events.at(-1)).toMatchObject({ operation: 'ping', error: 'cancelled' });
  });
});

describe('ctx.use', () => {
  let close: (() => Promise<void>) | undefined;
  afterEach(async () => {
    await close?.();
    close = undefined;
  });

  for (const storeKind of STORE_KINDS) {
    it(`gives a handler the connection's client, keyed per step and recorded (${storeKind})`, async () => {
      const ping = new PingConnection('ping');
      const job = defineIntegration({
        id: 'pinger',
        mode: 'async',
        retry: { maxAttempts: 3, initialDelayMs: 10, maxDelayMs: 10, jitter: 0 },
        handler: async (ctx) => {
          const a = await ctx.step(
            'first',
            async () => (await ctx.use(ping).ping(1)) + (await ctx.use(ping).ping(2)),
          );
          const b = await ctx.step('second', () => ctx.use<PingConnection>('ping').ping(a));
          if (ctx.attempt === 1) throw new Error('once more');
          return { b };
        },
      });
      const t = await testEngine([job], { storeKind, connections: [ping] });
      close = t.close;
      const { instanceId } = await t.engine.accept('pinger', {});
      const done = await waitForStatus(t.engine, instanceId);
      expect(done.status).toBe('succeeded');
      expect(done.output).toEqual({ b: 12 });
      // The steps' results were kept: the second attempt made no operation again.
      expect(ping.keys).toEqual([`${instanceId}:first:0`, `${instanceId}:first:1`, `${instanceId}:second:0`]);
      const events = (await t.engine.getDetail(instanceId)).events.filter(
        (e) => e.type === 'connection.call',
      );
      expect(events.map((e) => [e.data.step, e.data.n, e.data.answer])).toEqual([
        ['first', 1, 2],
        ['first', 2, 4],
        ['second', 6, 12],
      ]);
    });
  }

  it('refuses a connection of the other sort, by object and by id, with a clear error', async () => {
    const ping = new PingConnection('ping');
    const http = httpConnection('shop', { baseUrl: 'http://127.0.0.1:9' });
    const { call, use } = makeCaller({
      instanceId: 'i-1',
      attempt: 1,
      signal: new AbortController().signal,
      connections: new Map<string, PingConnection | typeof http>([
        ['ping', ping],
        ['shop', http],
      ]),
    });
    await expect(call(ping as never, 'GET', '/')).rejects.toThrow(
      /"ping" \(type sftp\) is not an HTTP connection: use ctx\.use/,
    );
    await expect(call('ping', 'GET', '/')).rejects.toThrow(/not an HTTP connection/);
    expect(() => use(http as never)).toThrow(/"shop" \(type http\) is an HTTP connection: use ctx\.call/);
    expect(() => use('nowhere')).toThrow(/Unknown connection "nowhere": register it in the config/);
    await http.close();
  });

  it('defineConfig takes connections of every kind, and refuses what is none', () => {
    const ping = new PingConnection('ping');
    expect(defineConfig({ integrations: [], connections: [ping] }).connections).toEqual([ping]);
    expect(() => defineConfig({ integrations: [], connections: [{ id: 'x' } as never] })).toThrow(
      /connections\.0.*must be created with httpConnection\(\), sftpConnection\(\)/,
    );
  });
});

describe('a kind built on the guard, with limits shared through the store', () => {
  for (const storeKind of STORE_KINDS) {
    it(`holds maxConcurrency for two processes' copies of the connection together (${storeKind})`, async () => {
      const { store, cleanup } = await testStore(storeKind);
      const limits = store.limits?.();
      expect(limits).toBeDefined();
      // Two copies of one connection, as two processes would each define it, counting in one place.
      const a = new PingConnection('ping', { maxConcurrency: 2 });
      const b = new PingConnection('ping', { maxConcurrency: 2 });
      let inFlight = 0;
      let peak = 0;
      for (const copy of [a, b]) {
        const run = copy.guard.run.bind(copy.guard);
        copy.guard.run = (context, event, operation, classify, describe) =>
          run(
            context,
            event,
            async (signal) => {
              peak = Math.max(peak, ++inFlight);
              try {
                await new Promise((resolve) => setTimeout(resolve, 20));
                return await operation(signal);
              } finally {
                inFlight--;
              }
            },
            classify,
            describe,
          );
      }
      const errors: unknown[] = [];
      const unshare = [a, b].map((copy) =>
        copy.shareLimits(limits as LimitStore, (error) => errors.push(error)),
      );
      try {
        await Promise.all(Array.from({ length: 16 }, (_, i) => (i % 2 ? a : b).ping(context([]), i)));
        expect(peak).toBe(2); // per process, each copy alone would allow 2: together 4
        expect(errors).toEqual([]);
      } finally {
        for (const undo of unshare) await undo();
        await cleanup();
      }
    });
  }
});

describe('a guarded operation in a trace', () => {
  it('ends its call span however it ends, refused by an open circuit too', async () => {
    const exporter = new InMemorySpanExporter();
    const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
    const ping = new PingConnection('ping', { circuit: { failures: 1, reprobeMs: 60_000 } });
    const { use } = makeCaller({
      instanceId: 'i-1',
      attempt: 1,
      signal: new AbortController().signal,
      connections: new Map([['ping', ping]]),
      tracing: new Tracing(provider.getTracer('test')),
    });
    expect(await use(ping).ping(1)).toBe(2);
    ping.mode = 'refused';
    await expect(use(ping).ping(2)).rejects.toMatchObject({ name: 'CircuitOpenError' }); // ran, opened it
    await expect(use(ping).ping(3)).rejects.toMatchObject({ name: 'CircuitOpenError' }); // refused unrun
    const spans = exporter.getFinishedSpans();
    expect(spans.map((span) => span.status.code)).toEqual([
      SpanStatusCode.UNSET,
      SpanStatusCode.ERROR,
      SpanStatusCode.ERROR,
    ]);
    expect(spans.every((span) => span.name.startsWith('call ping'))).toBe(true);
    await provider.shutdown();
  });
});
