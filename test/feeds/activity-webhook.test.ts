/**
 * The activity webhook on both stores, against a real receiver on 127.0.0.1: every event of the
 * stream arrives as a CloudEvent, in stream order, none skipped; while the receiver is down the same
 * event is retried and nothing after it is sent; the cursor survives a restart (what was delivered
 * is not sent again); two processes on one store do not both send; binary and batch modes.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { HTTP } from 'cloudevents';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { defineConfig } from '../../src/define/config.js';
import { defineIntegration } from '../../src/define/integration.js';
import { Engine } from '../../src/engine/engine.js';
import type { ActivityWebhookOptions } from '../../src/feeds/activity-webhook.js';
import type { ActivityEvent } from '../../src/model.js';
import type { Store } from '../../src/store/store.js';
import { quietLogger, STORE_KINDS, testStore, waitForStatus } from '../support/engine.js';
import { waitFor } from '../support/wait.js';

const work = defineIntegration({
  id: 'work',
  mode: 'async',
  handler: async (ctx) => ctx.step('only', async () => 1),
});

interface Received {
  headers: IncomingHttpHeaders;
  body: string;
}

/** A webhook receiver: records every request; answers 503 while `down`. */
async function receiver() {
  const requests: Received[] = [];
  let down = false;
  let refused = 0;
  const server: Server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      if (down) {
        refused++;
        response.writeHead(503).end();
        return;
      }
      requests.push({ headers: request.headers, body: Buffer.concat(chunks).toString('utf8') });
      response.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}/activity`,
    requests,
    /** The CloudEvents received, in arrival order. */
    events: () =>
      requests.flatMap((r) => {
        const parsed = HTTP.toEvent({ headers: r.headers as Record<string, string>, body: r.body });
        return Array.isArray(parsed) ? parsed : [parsed];
      }),
    setDown(value: boolean) {
      down = value;
    },
    get refused() {
      return refused;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** The whole activity stream, in its order. */
async function stream(store: Store): Promise<ActivityEvent[]> {
  const all: ActivityEvent[] = [];
  let after = '0';
  if (!store.isStreamCursor(after)) after = '0:0';
  for (;;) {
    const page = await store.readEventStream({ after, limit: 1000 });
    all.push(...page.events);
    if (page.events.length < 1000) return all;
    after = page.cursor;
  }
}

describe.each(STORE_KINDS)('activity webhook (%s)', (storeKind) => {
  let store: Store;
  let cleanup: () => Promise<void>;
  let hook: Awaited<ReturnType<typeof receiver>>;
  const engines: Engine[] = [];
  beforeEach(async () => {
    ({ store, cleanup } = await testStore(storeKind));
    hook = await receiver();
  });
  afterEach(async () => {
    for (const engine of engines.splice(0)) await engine.stop(1_000);
    await hook.close();
    await cleanup();
  });

  async function engine(options: Partial<ActivityWebhookOptions> = {}, workerId?: string) {
    const started = await Engine.create({
      integrations: [work],
      store,
      logger: quietLogger,
      pollIntervalMs: 50,
      ...(workerId ? { workerId } : {}),
      activityWebhook: {
        url: hook.url,
        pollIntervalMs: 20,
        retry: { minMs: 20, maxMs: 100 },
        source: 'https://tandem.example',
        ...options,
      },
    });
    started.start();
    engines.push(started);
    return started;
  }

  async function runInstances(on: Engine, count: number): Promise<string[]> {
    const ids: string[] = [];
    for (let i = 0; i < count; i++) ids.push((await on.accept('work', { n: i })).instanceId);
    for (const id of ids) await waitForStatus(on, id);
    return ids;
  }

  /** Waits until the receiver has every event of the stream, and returns the stream. */
  async function delivered(): Promise<ActivityEvent[]> {
    let all: ActivityEvent[] = [];
    await waitFor(async () => {
      all = await stream(store);
      const ids = new Set(hook.events().map((e) => e.id));
      return all.length > 0 && all.every((e) => ids.has(String(e.id)));
    }, 'every event of the stream at the receiver');
    return all;
  }

  it('sends every event as a CloudEvent, in stream order, and retries while the receiver is down', async () => {
    const tandem = await engine();
    const first = await runInstances(tandem, 3);
    const all = await delivered();
    const received = hook.events();
    expect(received.map((e) => e.id)).toEqual(all.map((e) => String(e.id)));
    const accepted = received.find((e) => e.subject === first[0] && e.type === 'tandem.accepted')!;
    expect(accepted).toMatchObject({
      specversion: '1.0',
      source: 'https://tandem.example',
      datacontenttype: 'application/json',
      integration: 'work',
    });
    expect(accepted.data).toMatchObject({
      instanceId: first[0],
      integrationId: 'work',
      run: 1,
      type: 'accepted',
    });
    expect(hook.requests[0]!.headers['content-type']).toMatch(/^application\/cloudevents\+json/);
    expect(new Set(received.map((e) => e.type))).toEqual(
      new Set([
        'tandem.accepted',
        'tandem.started',
        'tandem.step.started',
        'tandem.step.succeeded',
        'tandem.succeeded',
      ]),
    );

    // The receiver goes down: nothing more arrives, the same event is tried again and again.
    hook.setDown(true);
    const before = hook.requests.length;
    await runInstances(tandem, 2);
    await waitFor(() => hook.refused >= 3, 'three refused deliveries');
    expect(hook.requests.length).toBe(before);
    // Back up: everything since arrives, in order, none skipped (a resend is allowed, a gap is not).
    hook.setDown(false);
    const later = await delivered();
    const ids = hook.events().map((e) => e.id);
    const firstSeen = ids.filter((id, at) => ids.indexOf(id) === at);
    expect(firstSeen).toEqual(later.map((e) => String(e.id)));
  });

  it('keeps its place across a restart: what was delivered is not sent again', async () => {
    const one = await engine({}, 'one');
    await runInstances(one, 2);
    await delivered();
    await one.stop(1_000);
    engines.splice(engines.indexOf(one), 1);
    const count = hook.requests.length;
    // Events written while no process sends are sent by the next one.
    const two = await engine({}, 'two');
    await runInstances(two, 1);
    const all = await delivered();
    const received = hook.events().map((e) => e.id);
    expect(received).toEqual(all.map((e) => String(e.id)));
    expect(hook.requests.length).toBeGreaterThan(count);
  });

  it('is sent by one process at a time when several share the store', async () => {
    const a = await engine({}, 'a');
    await engine({}, 'b');
    await runInstances(a, 4);
    const all = await delivered();
    // Each event exactly once: the second process never held the lease while the first was alive.
    expect(hook.events().map((e) => e.id)).toEqual(all.map((e) => String(e.id)));
  });

  it('sends binary mode (ce-* headers, the data as body) and batch mode, with the configured headers', async () => {
    const tandem = await engine({
      mode: 'binary',
      headers: { authorization: 'Bearer t0ken' },
      types: ['succeeded'],
    });
    const [id] = await runInstances(tandem, 1);
    await waitFor(() => hook.requests.length >= 1, 'a request');
    const [request] = hook.requests;
    expect(request!.headers).toMatchObject({
      authorization: 'Bearer t0ken',
      'ce-specversion': '1.0',
      'ce-type': 'tandem.succeeded',
      'ce-subject': id,
      'ce-source': 'https://tandem.example',
      'ce-integration': 'work',
    });
    expect(JSON.parse(request!.body)).toMatchObject({ instanceId: id, type: 'succeeded' });
    await tandem.stop(1_000);
    engines.splice(0);

    // Batch mode from where the binary feed left off: one request carries several events.
    // The receiver is down while the instances run, so that the events wait for one batch.
    hook.setDown(true);
    const batch = await engine({ mode: 'batch' }, 'batcher');
    await runInstances(batch, 2);
    await waitFor(() => hook.refused >= 1, 'a refused batch');
    hook.setDown(false);
    await waitFor(
      () =>
        hook.requests.some((r) =>
          r.headers['content-type']?.startsWith('application/cloudevents-batch+json'),
        ),
      'a batch',
    );
    const batched = hook.requests.filter((r) =>
      r.headers['content-type']?.startsWith('application/cloudevents-batch+json'),
    );
    expect(Math.max(...batched.map((r) => (JSON.parse(r.body) as unknown[]).length))).toBeGreaterThan(1);
  });
});

describe('activity webhook options', () => {
  it('refuses wrong options at definition and a source that is no URI reference at start', async () => {
    const config = (activityWebhook: unknown) => () =>
      defineConfig({ integrations: [work], activityWebhook: activityWebhook as ActivityWebhookOptions });
    expect(config({ url: 'https://hooks.example/tandem?key=1' })).not.toThrow();
    expect(config({ url: 'ftp://hooks.example' })).toThrow(/activityWebhook\.url.*http/);
    expect(config({ url: 'https://hooks.example', mode: 'stream' })).toThrow(/activityWebhook\.mode/);
    expect(config({ url: 'https://hooks.example', types: ['nothing'] })).toThrow(/activityWebhook\.types/);
    expect(config({ url: 'https://hooks.example', headers: { authorization: 7 } })).toThrow(
      /activityWebhook\.headers/,
    );
    expect(config({ url: 'https://hooks.example', retry: { minMs: 0 } })).toThrow(
      /activityWebhook\.retry\.minMs/,
    );
    const { store, cleanup } = await testStore('sqlite');
    try {
      await expect(
        Engine.create({
          integrations: [work],
          store,
          logger: quietLogger,
          activityWebhook: { url: 'https://hooks.example', source: 'not a uri' },
        }),
      ).rejects.toMatchObject({ code: 'invalid-definition' });
    } finally {
      await cleanup();
    }
  });
});
