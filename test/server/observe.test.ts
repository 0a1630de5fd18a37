import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineIntegration } from '../../src/define/integration.js';
import { testServer } from '../support/server.js';
import { waitFor } from '../support/wait.js';

interface SseEvent {
  id: string;
  event: string;
  data: { id: number; instanceId: string; type: string };
}

/** Reads an SSE response until `stop` says so or the stream ends; returns the events. */
async function readSse(url: string, headers: Record<string, string>, stop: (events: SseEvent[]) => boolean) {
  const controller = new AbortController();
  const response = await fetch(url, { headers, signal: controller.signal });
  expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
  const events: SseEvent[] = [];
  const decoder = new TextDecoder();
  let buffer = '';
  try {
    for await (const chunk of response.body!) {
      buffer += decoder.decode(chunk as Uint8Array, { stream: true });
      let end = buffer.indexOf('\n\n');
      while (end >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        end = buffer.indexOf('\n\n');
        const fields = Object.fromEntries(
          block
            .split('\n')
            .filter((line) => line !== '' && !line.startsWith(':'))
            .map((line) => [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 2)]),
        );
        if (fields.data)
          events.push({ id: fields.id ?? '', event: fields.event ?? '', data: JSON.parse(fields.data) });
        if (stop(events)) {
          controller.abort();
          return events;
        }
      }
    }
  } catch (error) {
    if (!controller.signal.aborted) throw error;
  }
  return events;
}

describe('observing over HTTP', () => {
  it('streams activity as SSE; a client that reconnects with Last-Event-ID gets every event exactly once', async () => {
    const work = defineIntegration({
      id: 'work',
      mode: 'async',
      route: 'POST /work',
      async handler(ctx) {
        await ctx.step('only', () => 1);
      },
    });
    const t = await testServer([work], {}, { concurrency: 100 });
    try {
      const COUNT = 5_000;
      const stream = `${t.url}/api/activity?integration=work`;
      // Connect before the run, from the current end of the stream.
      const firstPart = readSse(stream, {}, (events) => events.length >= 4_000);
      await new Promise((resolve) => setTimeout(resolve, 100));
      const accepting = (async () => {
        for (let i = 0; i < COUNT; i += 100) {
          await Promise.all(Array.from({ length: 100 }, () => t.engine.accept('work', {})));
        }
      })();
      const first = await firstPart; // disconnects mid-run
      await accepting;
      await waitFor(
        async () => (await t.store.countInstances({ status: 'succeeded' })) === COUNT,
        'all to succeed',
        60_000,
      );
      await waitFor(() => t.engine.activeCount === 0, 'writes to settle');
      const total = COUNT * 5; // accepted, started, step.started, step.succeeded, succeeded
      const rest = await readSse(
        stream,
        { 'last-event-id': first.at(-1)!.id },
        (events) => first.length + events.length >= total,
      );
      const ids = [...first, ...rest].map((e) => e.data.id);
      expect(ids).toHaveLength(total);
      expect(new Set(ids).size).toBe(total);
      const succeededOnly = await readSse(
        `${stream}&status=succeeded&after=start`,
        {},
        (events) => events.length >= COUNT,
      );
      expect(succeededOnly.every((e) => e.event === 'succeeded')).toBe(true);
    } finally {
      await t.close();
    }
  }, 120_000);

  it('serves /metrics in the Prometheus text format with counters that match the store, sync calls included', async () => {
    const balance = defineIntegration({
      id: 'check-balance',
      mode: 'sync',
      route: 'GET /balance',
      handler: () => ({ body: { balance: 10 } }),
    });
    const sync = defineIntegration({
      id: 'sync-inventory',
      mode: 'async',
      route: 'POST /sync',
      handler: () => 1,
    });
    const t = await testServer([balance, sync]);
    try {
      for (let i = 0; i < 7; i++) expect((await t.request('/balance')).status).toBe(200);
      for (let i = 0; i < 5; i++)
        expect((await t.request('/sync', { method: 'POST', json: {} })).status).toBe(202);
      await waitFor(
        async () => (await t.store.countInstances({ status: 'succeeded' })) === 12,
        'all to be recorded',
      );
      const response = await t.request('/metrics');
      expect(response.status).toBe(200);
      const families = parsePrometheusTextFormat(response.text);
      const sample = (name: string, labels: Record<string, string>) =>
        Number(
          families
            .find((f) => f.name === name)
            ?.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v))?.value,
        );
      expect(sample('tandem_instances_succeeded_total', { integration: 'check-balance', mode: 'sync' })).toBe(
        await t.store.countInstances({ integrationId: 'check-balance', status: 'succeeded' }),
      );
      expect(sample('tandem_instances_accepted_total', { integration: 'sync-inventory' })).toBe(
        await t.store.countInstances({ integrationId: 'sync-inventory' }),
      );
    } finally {
      await t.close();
    }
  });

  it('advises splitting a slow sync integration, with its p95 in the text', async () => {
    const slow = defineIntegration({
      id: 'credit-check',
      mode: 'sync',
      route: 'POST /credit',
      input: z.object({ n: z.number() }),
      deadline: 400,
      async handler(ctx) {
        await new Promise((resolve) => setTimeout(resolve, 250 + (ctx.input.n % 5) * 10));
        return { body: { ok: true } };
      },
    });
    const t = await testServer([slow]);
    try {
      await Promise.all(
        Array.from({ length: 25 }, (_, n) => t.request('/credit', { method: 'POST', json: { n } })),
      );
      await waitFor(async () => (await t.store.countInstances({})) === 25, 'records');
      const { json } = await t.request('/api/integrations');
      const item = json.items.find((i: { id: string }) => i.id === 'credit-check');
      const p95 = item.stats.windows['24h'].p95;
      expect(p95).toBeGreaterThan(200);
      expect(item.advice).toHaveLength(1);
      expect(item.advice[0].kind).toBe('split-sync-to-async');
      expect(item.advice[0].message).toContain(`p95 of ${p95} ms`);
      expect(item.stats.windows['1h'].total).toBe(25);
    } finally {
      await t.close();
    }
  });
});

describe('advisor over HTTP', () => {
  it('answers POST /api/advisor/decide for the table and refuses a malformed question', async () => {
    const t = await testServer([defineIntegration({ id: 'x', mode: 'async', handler: () => 1 })]);
    try {
      const yes = await t.request('/api/advisor/decide', {
        method: 'POST',
        json: { immediateResponse: true, finishesInSeconds: false, needsRerun: false },
      });
      expect(yes.status).toBe(200);
      expect(yes.json.pattern).toBe('sync-to-async');
      const bad = await t.request('/api/advisor/decide', {
        method: 'POST',
        json: { immediateResponse: 'yes' },
      });
      expect(bad.status).toBe(400);
      expect(bad.json.errors.map((e: { path: string }) => e.path).sort()).toEqual([
        'finishesInSeconds',
        'immediateResponse',
        'needsRerun',
      ]);
    } finally {
      await t.close();
    }
  });
});
