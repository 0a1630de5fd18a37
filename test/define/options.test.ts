import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { APP_NAMES } from '../../examples/retail/apps.js';
import { retail } from '../../examples/retail/integrations.js';
import { engineOptionsOf } from '../../src/cli/load-config.js';
import { httpConnection } from '../../src/connections/http.js';
import { secret } from '../../src/connections/secret.js';
import { defineConfig } from '../../src/define/config.js';
import { defineIntegration } from '../../src/define/integration.js';
import { InvalidDefinitionError } from '../../src/errors.js';
import { tempDir } from '../support/tmp.js';

const handler = () => {};
const KEY = 'key-0123456789abcdef';
const WEBHOOK_SECRET = `whsec_${Buffer.from('a webhook signing secret').toString('base64')}`;

/** The `invalid-definition` message `define()` throws (and fails when it throws nothing). */
function refusal(define: () => unknown): string {
  try {
    define();
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidDefinitionError);
    expect((error as InvalidDefinitionError).code).toBe('invalid-definition');
    return (error as Error).message;
  }
  throw new Error('the definition was accepted');
}

const async = (options: Record<string, unknown>) => () =>
  defineIntegration({ id: 'job', mode: 'async', handler, ...options } as never);
const sync = (options: Record<string, unknown>) => () =>
  defineIntegration({ id: 'lookup', mode: 'sync', handler, ...options } as never);
const scheduled = (options: Record<string, unknown>) => () =>
  defineIntegration({ id: 'nightly', mode: 'scheduled', cron: '0 2 * * *', handler, ...options } as never);
const config = (options: Record<string, unknown>) => () =>
  defineConfig({ integrations: [], ...options } as never);
const connection = (options: Record<string, unknown>) => () =>
  httpConnection('bank', { baseUrl: 'https://bank.example', ...options } as never);

describe('definition options', () => {
  it.each([
    // Unknown keys, at the top and nested, with a hint at the option meant.
    [
      'a misspelt option',
      async({ retries: { maxAttempts: 3 } }),
      /unknown option "retries" \(did you mean "retry"\?\)/,
    ],
    [
      'a misspelt nested option',
      async({ retry: { initalDelayMs: 5 } }),
      /unknown option "retry\.initalDelayMs" \(did you mean "retry\.initialDelayMs"\?\)/,
    ],
    [
      'an unknown nested option',
      async({ retry: { backoff: 'linear' } }),
      /unknown option "retry\.backoff" \(known: maxAttempts, initialDelayMs, factor, maxDelayMs, jitter\)/,
    ],
    ['retry on a sync integration', sync({ retry: { maxAttempts: 2 } }), /unknown option "retry"/],
    ['a deadline on an async integration', async({ deadline: 1_000 }), /unknown option "deadline"/],
    ['params on an async integration', async({ params: z.object({}) }), /unknown option "params"/],
    ['cron on an async integration', async({ cron: '* * * * *' }), /unknown option "cron"/],
    [
      'a misspelt scheduled option',
      scheduled({ timout: 5_000 }),
      /unknown option "timout" \(did you mean "timeout"\?\)/,
    ],
    [
      'an unknown key in auth',
      async({ route: 'POST /jobs', auth: { type: 'api-key', keys: [KEY], headr: 'x-key' } }),
      /unknown option "auth\.headr" \(did you mean "auth\.header"\?\)/,
    ],
    [
      'an unknown key in webhook auth',
      async({
        route: 'POST /hooks',
        auth: { type: 'standard-webhooks', secret: WEBHOOK_SECRET, tolerance: 60 },
      }),
      /unknown option "auth\.tolerance"/,
    ],
    // Numbers: NaN, Infinity, negative, out of range, not integers.
    [
      'a NaN initial delay',
      async({ retry: { initialDelayMs: Number.NaN } }),
      /retry\.initialDelayMs must be a number of milliseconds from 0 to \d+, got NaN/,
    ],
    [
      'an infinite max delay',
      async({ retry: { maxDelayMs: Number.POSITIVE_INFINITY } }),
      /retry\.maxDelayMs .*got Infinity/,
    ],
    ['a negative initial delay', async({ retry: { initialDelayMs: -1 } }), /retry\.initialDelayMs .*got -1/],
    [
      'a shrinking factor',
      async({ retry: { factor: 0.5 } }),
      /retry\.factor must be a number from 1 to 100, got 0\.5/,
    ],
    ['a NaN factor', async({ retry: { factor: Number.NaN } }), /retry\.factor .*got NaN/],
    [
      'a jitter above 1',
      async({ retry: { jitter: 2 } }),
      /retry\.jitter must be a number from 0 to 1, got 2/,
    ],
    [
      'a fractional attempt count',
      async({ retry: { maxAttempts: 2.5 } }),
      /retry\.maxAttempts must be an integer from 1 to 10000, got 2\.5/,
    ],
    ['zero attempts', async({ retry: { maxAttempts: 0 } }), /retry\.maxAttempts .*got 0/],
    [
      'a negative timeout',
      async({ timeout: -1 }),
      /timeout must be a number of milliseconds above 0 .*got -1/,
    ],
    ['a timeout no timer can wait', async({ timeout: 2 ** 31 }), /timeout .*got 2147483648/],
    ['a NaN scheduled timeout', scheduled({ timeout: Number.NaN }), /timeout .*got NaN/],
    ['an infinite deadline', sync({ deadline: Number.POSITIVE_INFINITY }), /deadline .*got Infinity/],
    [
      'a NaN webhook tolerance',
      async({
        route: 'POST /hooks',
        auth: { type: 'standard-webhooks', secret: WEBHOOK_SECRET, toleranceSeconds: Number.NaN },
      }),
      /auth\.toleranceSeconds .*got NaN/,
    ],
    // Wrong types.
    [
      'a handler that is not a function',
      async({ handler: 'run' }),
      /handler must be a function, got a string/,
    ],
    ['an input that is not a schema', async({ input: { orderId: 'string' } }), /input must be a zod schema/],
    ['a query that is not a schema', sync({ query: 'q' }), /query must be a zod schema/],
    [
      'a tracking field that is a number',
      async({ track: { orderId: 5 } }),
      /track\.orderId must be a field path or a function of the input, got 5/,
    ],
    [
      'an ordering key that is an object',
      async({ orderingKey: { field: 'a' } }),
      /orderingKey must be a field path or a function/,
    ],
    ['redact as one string', async({ redact: 'card.number' }), /redact must be a list of field paths/],
    ['a numeric description', async({ description: 42 }), /description must be a string, got 42/],
    ['a retry policy that is a number', async({ retry: 3 }), /retry must be an object of options, got 3/],
    [
      'an unknown auth type',
      async({ route: 'POST /jobs', auth: { type: 'basic', keys: [KEY] } }),
      /auth\.type must be "api-key", "standard-webhooks" or "jwt"/,
    ],
    [
      'an unset key',
      async({ route: 'POST /jobs', auth: { type: 'api-key', keys: [undefined] } }),
      /auth\.keys .*is an environment variable unset\?/,
    ],
    ['a numeric cron', scheduled({ cron: 5 }), /cron must be a string, got 5/],
    [
      'an input schema on a scheduled integration',
      scheduled({ input: z.object({}) }),
      /input must be left out: a scheduled integration takes parameters/,
    ],
    ['an unknown overlap', scheduled({ overlap: 'parallel' }), /overlap must be "skip" or "queue"/],
  ])('refuses %s, naming the option', (_name, define, message) => {
    expect(refusal(define)).toMatch(message);
  });

  it('names every wrong option of a definition at once', () => {
    const message = refusal(async({ retries: 3, timeout: Number.NaN }));
    expect(message).toMatch(/^Integration "job": /);
    expect(message).toMatch(/unknown option "retries"/);
    expect(message).toMatch(/timeout .*got NaN/);
  });

  it('accepts every option of every mode, and keeps functions and schemas as they are', () => {
    const input = z.object({ orderId: z.string(), card: z.object({ number: z.string() }) });
    const orderOf = (i: { orderId: string }) => i.orderId;
    const job = defineIntegration({
      id: 'job',
      mode: 'async',
      description: 'every async option',
      route: 'POST /jobs',
      auth: { type: 'api-key', header: 'x-job-key', keys: [KEY] },
      input,
      track: { orderId: 'orderId', order: orderOf },
      redact: ['card.number'],
      retry: { maxAttempts: 3, initialDelayMs: 0, factor: 1, maxDelayMs: 0, jitter: 0 },
      timeout: 2 ** 31 - 1,
      orderingKey: orderOf,
      handler,
    });
    expect(job.input).toBe(input);
    expect((job as { orderingKey?: unknown }).orderingKey).toBe(orderOf);
    expect(job.handler).toBe(handler);
    const params = z.object({ sku: z.string() });
    const lookup = defineIntegration({
      id: 'lookup',
      mode: 'sync',
      route: 'GET /stock/:sku',
      auth: { type: 'standard-webhooks', secret: [WEBHOOK_SECRET], toleranceSeconds: 60 },
      params,
      query: z.object({ warehouse: z.string().optional() }),
      deadline: 5_000,
      handler: () => ({ units: 1 }),
    });
    expect((lookup as { params?: unknown }).params).toBe(params);
    const nightly = defineIntegration({
      id: 'nightly',
      mode: 'scheduled',
      cron: '0 30 2 * * *',
      timezone: 'Europe/Berlin',
      parameters: { lastRunAt: null as string | null, limit: 100 },
      overlap: 'queue',
      catchUp: 'last',
      retry: { maxAttempts: 2 },
      timeout: 60_000,
      track: { slot: 'scheduledFor' },
      orderingKey: 'scheduledFor',
      handler,
    });
    expect((nightly as { parameters?: unknown }).parameters).toEqual({ lastRunAt: null, limit: 100 });
  });
});

describe('config options', () => {
  it.each([
    [
      'a misspelt option',
      config({ concurency: 4 }),
      /^Config: unknown option "concurency" \(did you mean "concurrency"\?\)/,
    ],
    [
      'a misspelt server option',
      config({ server: { bodyLimt: 1_000 } }),
      /unknown option "server\.bodyLimt" \(did you mean "server\.bodyLimit"\?\)/,
    ],
    [
      'an unknown retention option',
      config({ retention: { keepDays: 7 } }),
      /unknown option "retention\.keepDays" \(known: keepMs, failedSyncKeepMs, failedKeepMs, intervalMs\)/,
    ],
    ['zero concurrency', config({ concurrency: 0 }), /concurrency must be an integer from 1 to \d+, got 0/],
    ['a NaN lease', config({ leaseMs: Number.NaN }), /leaseMs .*got NaN/],
    [
      'an infinite poll interval',
      config({ pollIntervalMs: Number.POSITIVE_INFINITY }),
      /pollIntervalMs .*got Infinity/,
    ],
    ['a negative keep period', config({ retention: { keepMs: -1 } }), /retention\.keepMs .*got -1/],
    ['a negative look-back window', config({ events: { lookBackMs: -1 } }), /events\.lookBackMs .*got -1/],
    [
      'an unknown events option',
      config({ events: { lookback: 5 } as never }),
      /unknown option "events\.lookback" \(did you mean "events\.lookBackMs"\?\)/,
    ],
    [
      'retention true',
      config({ retention: true }),
      /retention must be false or \{ keepMs, failedSyncKeepMs, failedKeepMs, intervalMs \}/,
    ],
    [
      'a negative body limit',
      config({ server: { bodyLimit: -5 } }),
      /server\.bodyLimit must be an integer from 1 to \d+, got -5/,
    ],
    [
      'a NaN deadline cap',
      config({ server: { maxDeadlineMs: Number.NaN } }),
      /server\.maxDeadlineMs .*got NaN/,
    ],
    [
      'a numeric admin token',
      config({ server: { adminToken: 42 } }),
      /server\.adminToken must be a string or null, got 42/,
    ],
    ['a numeric store', config({ store: 5 }), /store must be a non-empty string, got 5/],
    [
      'a plain object as connection',
      config({ connections: [{ id: 'bank' }] }),
      /connections\.0 must be created with httpConnection\(\)/,
    ],
  ])('refuses %s, naming the option', (_name, define, message) => {
    expect(refusal(define)).toMatch(message);
  });

  it('still refuses a plain object as integration, and duplicate ids', () => {
    expect(refusal(config({ integrations: [{ id: 'plain', mode: 'async' }] }))).toMatch(
      /defineIntegration\(\)/,
    );
    const one = defineIntegration({ id: 'one', mode: 'async', handler });
    expect(refusal(config({ integrations: [one, one] }))).toMatch(/defined twice/);
  });

  it('loads the retail example with every integration and connection', async () => {
    const urls = Object.fromEntries(APP_NAMES.map((name, i) => [name, `http://127.0.0.1:${4001 + i}`]));
    const inbox = tempDir();
    const { integrations, connections } = retail({ urls: urls as never, inbox: inbox.path });
    const defined = defineConfig({
      integrations,
      connections,
      store: 'sqlite::memory:',
      concurrency: 8,
      leaseMs: 30_000,
      pollIntervalMs: 1_000,
      retention: { keepMs: 0, intervalMs: 60_000 },
      server: {
        adminToken: null,
        bodyLimit: 1_048_576,
        maxBodyDepth: 64,
        maxQueueDepth: 100_000,
        queueDepthRefreshMs: 1_000,
        retryAfterSeconds: 0,
        maxDeadlineMs: 60_000,
      },
    });
    expect(defined.integrations.length).toBeGreaterThan(5);
    expect(defined.connections?.length).toBeGreaterThan(5);
    for (const c of connections) await c.close();
    inbox.cleanup();
  });
});

describe('connection options', () => {
  it.each([
    [
      'a misspelt option',
      connection({ timout: 1_000 }),
      /^Connection "bank": unknown option "timout" \(did you mean "timeout"\?\)/,
    ],
    [
      'a misspelt circuit option',
      connection({ circuit: { failure: 3 } }),
      /unknown option "circuit\.failure" \(did you mean "circuit\.failures"\?\)/,
    ],
    [
      'an unknown auth option',
      connection({ auth: { type: 'bearer', token: 't', scheme: 'Token' } }),
      /unknown option "auth\.scheme"/,
    ],
    ['a NaN timeout', connection({ timeout: Number.NaN }), /timeout .*got NaN/],
    [
      'an infinite re-probe time',
      connection({ circuit: { reprobeMs: Number.POSITIVE_INFINITY } }),
      /circuit\.reprobeMs .*got Infinity/,
    ],
    [
      'zero failures',
      connection({ circuit: { failures: 0 } }),
      /circuit\.failures must be an integer from 1 to \d+, got 0/,
    ],
    ['a fractional concurrency', connection({ maxConcurrency: 1.5 }), /maxConcurrency .*got 1\.5/],
    ['a zero rate', connection({ ratePerSecond: 0 }), /ratePerSecond must be a number above 0 .*got 0/],
    ['a negative rate', connection({ ratePerSecond: -3 }), /ratePerSecond .*got -3/],
    ['circuit true', connection({ circuit: true }), /circuit must be false or \{ failures, reprobeMs \}/],
    [
      'a base URL that is not http',
      connection({ baseUrl: 'ftp://bank.example' }),
      /baseUrl must be an http: or https: URL/,
    ],
    ['a base URL that is no URL', connection({ baseUrl: 'bank' }), /baseUrl must be an http: or https: URL/],
    [
      'a numeric header',
      connection({ headers: { 'x-client': 7 } }),
      /headers\.x-client must be a string, got 7/,
    ],
    ['retryOn that is no function', connection({ retryOn: 'always' }), /retryOn must be a function/],
    [
      'an unknown auth type',
      connection({ auth: { type: 'digest' } }),
      /auth\.type must be "basic", "bearer", "api-key" or "oauth2-client-credentials"/,
    ],
    [
      'an api key in the body',
      connection({ auth: { type: 'api-key', in: 'body', name: 'k', value: 'v' } }),
      /auth\.in must be "header" or "query"/,
    ],
    [
      'an unset token',
      connection({ auth: { type: 'bearer', token: undefined } }),
      /auth\.token must be a non-empty string or secret\('NAME'\)/,
    ],
  ])('refuses %s, naming the option', (_name, define, message) => {
    expect(refusal(define)).toMatch(message);
  });

  it('never shows a secret in the message', () => {
    const message = refusal(
      connection({ auth: { type: 'basic', username: 'alice', password: 42, realm: 'x' } }),
    );
    expect(message).not.toContain('alice');
    expect(message).toMatch(/auth\.password/);
  });

  it('accepts every option', async () => {
    const retryOn = () => undefined;
    const bank = httpConnection('bank', {
      baseUrl: 'https://bank.example/api',
      auth: {
        type: 'oauth2-client-credentials',
        tokenUrl: 'https://id.example/token',
        clientId: 'tandem',
        clientSecret: secret('BANK_SECRET'),
        scope: 'accounts',
      },
      headers: { 'x-client': 'tandem' },
      timeout: 5_000,
      maxConcurrency: 4,
      ratePerSecond: 0.5,
      circuit: false,
      retryOn,
    });
    expect(bank.options.retryOn).toBe(retryOn);
    await bank.close();
  });
});

describe('the config’s events options', () => {
  it('reach the engine', () => {
    const config = defineConfig({ integrations: [], events: { lookBackMs: 5_000 } });
    expect(engineOptionsOf(config).events).toEqual({ lookBackMs: 5_000 });
    expect(engineOptionsOf(defineConfig({ integrations: [] })).events).toBeUndefined();
  });
});
