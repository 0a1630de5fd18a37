/**
 * The test kit with durable waits: `advance()` skips a sleep and a wait's timeout (and never steps
 * to the NEVER of a wait without one), `sendEvent()` resumes a wait for an event, and
 * `answerCallback()` plays the partner calling a callback URL — once.
 */
import '../support/provided.js';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { z } from 'zod';
import { httpConnection } from '../../src/connections/http.js';
import { defineIntegration } from '../../src/define/integration.js';
import { TandemError } from '../../src/errors.js';
import { NEVER } from '../../src/lifecycle/index.js';
import {
  createTestEngine,
  type FakeApplicationOptions,
  fakeApplication,
  type TestEngine,
} from '../../src/testing/index.js';
import { STORE_KINDS } from '../support/engine.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const START = '2026-12-01T09:00:00Z';

/** The typed error a promise rejects with (the test fails if it resolves). */
async function rejection(promise: Promise<unknown>): Promise<TandemError> {
  const outcome = await promise.then(
    () => null,
    (error: unknown) => error,
  );
  expect(outcome).toBeInstanceOf(TandemError);
  return outcome as TandemError;
}

describe.each(STORE_KINDS)('the test kit with waits on %s', (kind) => {
  const open: { close(): Promise<void> }[] = [];
  afterEach(async () => {
    for (const thing of open.splice(0).reverse()) await thing.close();
  });
  const engine = async (options: Omit<Parameters<typeof createTestEngine>[0], 'store' | 'now'>) => {
    const made = await createTestEngine({
      ...options,
      now: START,
      ...(kind === 'postgres' ? { store: inject('postgresUrl') } : {}),
    });
    open.push(made);
    return made;
  };
  const app = async (routes: FakeApplicationOptions['routes']) => {
    const made = await fakeApplication({ routes });
    open.push(made);
    return made;
  };
  const statusOf = async (t: TestEngine, id: string) => (await t.result(id)).status;

  it('finishes a ctx.sleep of 2 days after advance(2 days), and not a millisecond before', async () => {
    const steps: string[] = [];
    const reminder = defineIntegration({
      id: 'reminder',
      mode: 'async',
      async handler(ctx) {
        await ctx.step('before', () => steps.push('before'));
        await ctx.sleep('s', '2d');
        await ctx.step('after', () => steps.push('after'));
        return { done: true };
      },
    });
    const t = await engine({ integrations: [reminder] });
    const { instanceId } = await t.trigger(reminder, {});
    await t.runUntilIdle();
    let result = await t.result(instanceId);
    expect(result.status).toBe('waiting');
    expect(result.instance.runAt).toBe(Date.parse(START) + 2 * DAY);

    await t.advance(2 * DAY - 1);
    expect(await statusOf(t, instanceId)).toBe('waiting');
    expect(steps).toEqual(['before']);

    await t.advance(1);
    result = await t.result(instanceId);
    expect(result.status).toBe('succeeded');
    expect(result.output).toEqual({ done: true });
    expect(steps).toEqual(['before', 'after']);
    expect(result.steps.map((s) => s.name)).toEqual(['before', 's', 'after']);
    // The step after the sleep ran at the wake-up time, on the kit's clock.
    expect(result.steps.find((s) => s.name === 'after')!.startedAt).toBe(Date.parse(START) + 2 * DAY);
    expect(result.events.filter((e) => e.type.startsWith('wait.')).map((e) => [e.type, e.data])).toEqual([
      [
        'wait.started',
        expect.objectContaining({ step: 's', kind: 'sleep', until: Date.parse(START) + 2 * DAY }),
      ],
      ['wait.resumed', { step: 's', by: 'time' }],
    ]);
  });

  it('resolves a waitForEvent with a timeout to null once advance() passes the timeout', async () => {
    const docs = defineIntegration({
      id: 'attach',
      mode: 'async',
      input: z.object({ employeeId: z.string() }),
      async handler(ctx) {
        const employee = await ctx.waitForEvent('employee', {
          event: 'employee.created',
          match: { employeeId: ctx.input.employeeId },
          timeout: '3h',
        });
        return { employee };
      },
    });
    const t = await engine({ integrations: [docs] });
    const { instanceId } = await t.trigger(docs, { employeeId: 'E-1' });
    await t.advance(3 * HOUR - 1);
    expect(await statusOf(t, instanceId)).toBe('waiting');
    await t.advance(1);
    const result = await t.result(instanceId);
    expect(result.status).toBe('succeeded');
    expect(result.output).toEqual({ employee: null });
    expect(result.waits).toEqual([
      expect.objectContaining({
        name: 'employee',
        kind: 'event',
        event: 'employee.created',
        match: { employeeId: 'E-1' },
        until: Date.parse(START) + 3 * HOUR,
        resolution: 'timeout',
      }),
    ]);
    expect(result.events.find((e) => e.type === 'wait.resumed')!.data).toEqual({
      step: 'employee',
      by: 'timeout',
    });
  });

  it('resumes a wait for an event with sendEvent(): only a matching one, once, and one sent before the wait too', async () => {
    const docs = defineIntegration({
      id: 'attach',
      mode: 'async',
      input: z.object({ employeeId: z.string() }),
      async handler(ctx) {
        return ctx.waitForEvent('employee', {
          event: 'employee.created',
          match: { employeeId: ctx.input.employeeId },
        });
      },
    });
    const t = await engine({ integrations: [docs] });
    const waiting = await t.trigger(docs, { employeeId: 'E-1' });
    await t.runUntilIdle();
    expect((await t.result(waiting.instanceId)).instance.runAt).toBe(NEVER);

    // A wait without a timeout is not a time to step to: a year passes, it still waits.
    await t.advance(365 * DAY);
    expect(await statusOf(t, waiting.instanceId)).toBe('waiting');

    const other = await t.sendEvent({ name: 'employee.created', payload: { employeeId: 'E-2' } });
    expect(other).toMatchObject({ duplicate: false, resumed: [] });
    expect(await statusOf(t, waiting.instanceId)).toBe('waiting');

    const sent = await t.sendEvent({
      name: 'employee.created',
      payload: { employeeId: 'E-1', userId: 'u-1' },
      id: 'hr-1',
    });
    expect(sent).toEqual({ eventId: 'hr-1', duplicate: false, resumed: [waiting.instanceId] });
    // sendEvent ran what it resumed: no runUntilIdle needed.
    const result = await t.result(waiting.instanceId);
    expect(result.status).toBe('succeeded');
    expect(result.output).toEqual({ employeeId: 'E-1', userId: 'u-1' });

    expect(
      await t.sendEvent({ name: 'employee.created', payload: { employeeId: 'E-1' }, id: 'hr-1' }),
    ).toEqual({ eventId: 'hr-1', duplicate: true, resumed: [] });

    // An event sent just before a wait begins is not lost: the wait takes it from the look-back window.
    await t.sendEvent({ name: 'employee.created', payload: { employeeId: 'E-3', userId: 'u-3' } });
    await t.advance(10 * 60_000);
    const late = await t.trigger(docs, { employeeId: 'E-3' });
    await t.runUntilIdle();
    expect(await t.result(late.instanceId)).toMatchObject({
      status: 'succeeded',
      output: { employeeId: 'E-3', userId: 'u-3' },
    });
  });

  it('answers a callback from the URL the fake partner received: it resumes once, then 409', async () => {
    const warehouse = await app({ 'POST /packing-lists': { status: 201, body: { packingListId: 'P-1' } } });
    const connection = httpConnection('warehouse', { baseUrl: warehouse.url });
    const ship = defineIntegration({
      id: 'ship',
      mode: 'async',
      input: z.object({ orderId: z.string() }),
      async handler(ctx) {
        const shipment = await ctx.callback<{ trackingNumber: string }>('shipment', { timeout: '3d' });
        await ctx.step('send-to-warehouse', () =>
          ctx.call(connection, 'POST', '/packing-lists', {
            json: { orderId: ctx.input.orderId, callbackUrl: shipment.url },
          }),
        );
        const shipped = await shipment.wait();
        return { trackingNumber: shipped?.trackingNumber ?? null };
      },
    });
    const t = await engine({
      integrations: [ship],
      connections: [connection],
      publicUrl: 'https://tandem.test/',
    });
    const { instanceId } = await t.trigger(ship, { orderId: 'A-1' });
    await t.runUntilIdle();
    expect(await statusOf(t, instanceId)).toBe('waiting');

    const url = warehouse.callbackUrl('POST /packing-lists');
    expect(url).toMatch(/^https:\/\/tandem\.test\/callbacks\/[\w-]+\.[\w-]+$/);
    expect(warehouse.callbackUrls()).toEqual([url]);

    await expect(t.answerCallback(url, { trackingNumber: 'TRK-1' })).resolves.toEqual({ instanceId });
    const result = await t.result(instanceId);
    expect(result.status).toBe('succeeded');
    expect(result.output).toEqual({ trackingNumber: 'TRK-1' });
    expect(warehouse.count()).toBe(1);

    const again = await rejection(t.answerCallback(url, { trackingNumber: 'TRK-2' }));
    expect([again.code, again.status]).toEqual(['callback-used', 409]);
    expect((await t.result(instanceId)).output).toEqual({ trackingNumber: 'TRK-1' });

    // A URL with a wrong secret, or none of Tandem's, is not found.
    const forged = await rejection(t.answerCallback(url.replace(/\.[\w-]+$/, '.forged'), {}));
    expect(forged.code).toBe('callback-not-found');
    expect((await rejection(t.answerCallback('https://tandem.test/elsewhere', {}))).code).toBe(
      'invalid-input',
    );
  });

  it('expires a callback at its timeout: the wait returns null and the late answer is refused with 410', async () => {
    const partner = await app({ 'POST /requests': { status: 202 } });
    const connection = httpConnection('partner', { baseUrl: partner.url });
    const ask = defineIntegration({
      id: 'ask',
      mode: 'async',
      async handler(ctx) {
        const answer = await ctx.callback('answer', { timeout: '1h' });
        await ctx.step('ask', () =>
          ctx.call(connection, 'POST', '/requests', { json: { replyTo: answer.url } }),
        );
        return { answer: await answer.wait() };
      },
    });
    const t = await engine({ integrations: [ask], connections: [connection] });
    const { instanceId } = await t.trigger(ask, {});
    await t.advance(HOUR);
    expect(await t.result(instanceId)).toMatchObject({ status: 'succeeded', output: { answer: null } });
    const late = await rejection(t.answerCallback(partner.callbackUrl(), { ok: true }));
    expect([late.code, late.status]).toEqual(['callback-expired', 410]);
  });
});
