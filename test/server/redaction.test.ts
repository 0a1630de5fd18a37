/**
 * Redaction end to end: a canary card number sent through a sync route with a hand-off and through
 * an async trigger, into a handler that puts it in a tracking value, a progress event, a step name,
 * a connection call's URL, a step result and a thrown error, must not come out of any door: the
 * management API, the activity stream, the CLI, the log lines, nor the stored rows other than
 * those the engine needs to run the instance (its input and step results).
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { instancesCommand } from '../../src/cli/remote.js';
import { httpConnection } from '../../src/connections/http.js';
import { defineIntegration } from '../../src/define/integration.js';
import { InvalidDefinitionError, TandemError } from '../../src/errors.js';
import { Redactor } from '../../src/redaction.js';
import type { PostgresStore } from '../../src/store/postgres/store.js';
import type { SqliteStore } from '../../src/store/sqlite/store.js';
import { appServer } from '../support/app-server.js';
import { STORE_KINDS, type StoreKind, waitForStatus } from '../support/engine.js';
import { testServer } from '../support/server.js';
import { waitFor } from '../support/wait.js';

const CANARY = '4111-CANARY-1111';
/** Searched for instead of the whole value: a leak of part of it, or of it encoded, is found too. */
const MARK = 'CANARY';

let bank: Awaited<ReturnType<typeof appServer>>;

beforeAll(async () => {
  // Echoes the path it was called with: the step result then holds the card number too.
  bank = await appServer((request, response) => {
    response
      .writeHead(200, { 'content-type': 'application/json' })
      .end(JSON.stringify({ seen: request.url }));
  });
});

afterAll(async () => {
  await bank?.close();
});

function integrations() {
  const connection = httpConnection('bank', { baseUrl: bank.url });
  const Card = z.object({
    orderId: z.string(),
    card: z.object({ number: z.string() }),
    fail: z.enum(['handler', 'downstream']).optional(),
  });
  const charge = defineIntegration({
    id: 'charge',
    mode: 'async',
    route: 'POST /charges',
    input: Card,
    redact: ['card.number'],
    track: { orderId: 'orderId', ref: (input) => `${input.orderId}/${input.card.number}` },
    retry: { maxAttempts: 2, initialDelayMs: 10, jitter: 0 },
    async handler(ctx) {
      const number = ctx.input.card.number;
      ctx.progress({ checking: number, note: `checking card ${number}` });
      await ctx.step(`check ${number}`, () =>
        ctx.call(connection, 'GET', `/cards/${encodeURIComponent(number)}`),
      );
      throw new Error(`card ${number} declined`);
    },
  });
  const pay = defineIntegration({
    id: 'pay',
    mode: 'sync',
    route: 'POST /pay',
    input: Card,
    redact: ['card.number'],
    track: { ref: (input) => `${input.orderId}/${input.card.number}` },
    async handler(ctx) {
      const { number } = ctx.input.card;
      if (ctx.input.fail === 'handler') throw new Error(`card ${number} refused`);
      // A typed downstream failure is passed on to the caller as it is, but for its secrets.
      if (ctx.input.fail === 'downstream')
        throw new TandemError('downstream-failed', `bank refused ${number}`);
      await ctx.start(charge, { orderId: `${ctx.input.orderId}-charge`, card: ctx.input.card });
      return { accepted: true, card: ctx.input.card, note: `paid with ${ctx.input.card.number}` };
    },
  });
  // Parameters are a scheduled instance's input: /api/schedules shows them by the same rule.
  const sweep = defineIntegration({
    id: 'sweep',
    mode: 'scheduled',
    cron: '0 0 1 1 *',
    parameters: { card: CANARY, batch: 10 },
    redact: ['parameters.card'],
    handler: () => {},
  });
  return { charge, pay, sweep, connection };
}

/** Every stored cell that holds the mark, as `table.column`. */
async function storedWithMark(kind: StoreKind, store: unknown): Promise<string[]> {
  const found = new Set<string>();
  const scan = (table: string, rows: Record<string, unknown>[]) => {
    for (const row of rows) {
      for (const [column, value] of Object.entries(row)) {
        const text = typeof value === 'string' ? value : JSON.stringify(value);
        if (text?.includes(MARK)) found.add(`${table}.${column}`);
      }
    }
  };
  if (kind === 'sqlite') {
    const { db } = store as SqliteStore;
    const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as {
      name: string;
    }[];
    for (const { name } of tables) {
      scan(name, db.prepare(`SELECT * FROM "${name}"`).all() as Record<string, unknown>[]);
    }
  } else {
    const { pool, schema } = store as PostgresStore;
    const tables = await pool.query<{ table_name: string }>(
      "SELECT table_name FROM information_schema.tables WHERE table_schema = $1 AND table_type = 'BASE TABLE'",
      [schema],
    );
    for (const { table_name: name } of tables.rows) {
      scan(name, (await pool.query(`SELECT * FROM "${schema}"."${name}"`)).rows);
    }
  }
  return [...found].sort();
}

/** The SSE stream from the start, read until `done` says enough came. */
async function readStream(url: string, done: (text: string) => boolean): Promise<string> {
  const controller = new AbortController();
  const response = await fetch(`${url}/api/activity?after=start`, { signal: controller.signal });
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let text = '';
  const timer = setTimeout(() => controller.abort(), 15_000);
  try {
    while (!done(text)) {
      const { value, done: ended } = await reader.read();
      if (ended) break;
      text += decoder.decode(value, { stream: true });
    }
  } finally {
    clearTimeout(timer);
    controller.abort();
  }
  return text;
}

const bin = join(import.meta.dirname, '../../bin/tandem.js');

/** The `tandem` command itself, as a user runs it. */
async function tandem(args: string[]): Promise<string> {
  const env = { ...process.env, TANDEM_CLI_SOURCE: '1' };
  const { stdout, stderr } = await promisify(execFile)(process.execPath, [bin, ...args], { env });
  return stdout + stderr;
}

/** The CLI's commands in this process (the same code `tandem instances` runs), for the many calls. */
async function cli(url: string, sub: string, args: string[], json: boolean): Promise<string> {
  let text = '';
  const out = new Writable({
    write(chunk, _encoding, callback) {
      text += String(chunk);
      callback();
    },
  });
  await instancesCommand(sub, args, {}, { url, json, out });
  return text;
}

describe.each(STORE_KINDS)('redaction on %s', (storeKind) => {
  it('keeps a redacted card number out of every output, log line and derived row', async () => {
    const lines: string[] = [];
    const logger = pino(
      { level: 'debug' },
      {
        write(line: string) {
          lines.push(line);
        },
      },
    );
    const { charge, pay, sweep, connection } = integrations();
    const t = await testServer([charge, pay, sweep], {}, { storeKind, logger, connections: [connection] });
    try {
      const card = { number: CANARY };
      const accepted = await t.request('/charges', { method: 'POST', json: { orderId: 'A-1', card } });
      expect(accepted.status).toBe(202);
      const paid = await t.request('/pay', { method: 'POST', json: { orderId: 'S-1', card } });
      expect(paid.status).toBe(200);
      const refused = await t.request('/pay', {
        method: 'POST',
        json: { orderId: 'S-2', card, fail: 'handler' },
      });
      expect(refused.status).toBe(500);
      const downstream = await t.request('/pay', {
        method: 'POST',
        json: { orderId: 'S-3', card, fail: 'downstream' },
      });
      expect(downstream.status).toBe(502);
      expect.soft(downstream.json.detail).toBe('bank refused [redacted]');

      const charges = await waitFor(async () => {
        const page = await t.engine.listInstances({ integrationId: 'charge', limit: 10, cursor: null });
        return page.items.length === 2 ? page.items : null;
      }, 'the charge and its hand-off child');
      for (const instance of charges) await waitForStatus(t.engine, instance.id);
      // Sync records are written off the response path, within 200 ms (longer on a busy machine).
      await waitFor(
        async () =>
          (await t.engine.listInstances({ integrationId: 'pay', limit: 10, cursor: null })).items.length ===
          3,
        'the sync records',
        60_000,
      );

      const outputs: Record<string, string> = {};
      const list = await t.request('/api/instances?limit=50');
      outputs.list = list.text;
      for (const item of list.json.items as { id: string }[]) {
        outputs[`detail ${item.id}`] = (await t.request(`/api/instances/${item.id}`)).text;
        outputs[`cli show ${item.id}`] = await cli(t.url, 'show', [item.id], false);
        outputs[`cli show --json ${item.id}`] = await cli(t.url, 'show', [item.id], true);
      }
      outputs.errors = (await t.request('/api/errors')).text;
      outputs.integrations = (await t.request('/api/integrations')).text;
      outputs.connections = (await t.request('/api/connections')).text;
      outputs.schedules = (await t.request('/api/schedules')).text;
      outputs['tandem instances show'] = await tandem(['instances', 'show', charges[0]!.id, '--url', t.url]);
      outputs['cli ls'] = await cli(t.url, 'ls', [], false);
      outputs['cli ls --json'] = await cli(t.url, 'ls', [], true);
      outputs.sse = await readStream(t.url, (text) => (text.match(/^event: failed$/gm) ?? []).length >= 2);
      outputs.log = lines.join('');

      for (const [where, text] of Object.entries(outputs)) {
        const leak = `${where} shows the card number:\n${text.slice(0, 2_000)}`;
        expect.soft(text.includes(MARK), leak).toBe(false);
      }
      // Each door was reached and carried the masked value (not nothing at all).
      expect(outputs.sse).toMatch(/event: progress\ndata: .*"checking":"\[redacted\]"/);
      expect(outputs.sse).toContain('card [redacted] declined');
      expect(outputs.sse).toContain('event: connection.call');
      expect(outputs.errors).toContain('card [redacted] declined');
      expect(outputs.errors).toContain('card [redacted] refused');
      expect(outputs.list).toContain('A-1/[redacted]');
      expect(outputs.list).toContain('S-2/[redacted]');
      expect(outputs['cli ls']).toContain('A-1/[redacted]');
      expect(outputs['tandem instances show']).toContain('error: card [redacted] declined');
      expect(outputs.log).toContain('card [redacted] refused');
      expect(outputs.schedules).toContain('"card":"[redacted]","batch":10');

      // At rest: only what the engine needs to run and rerun an async instance holds the value.
      const stored = await storedWithMark(storeKind, t.store);
      const kept =
        storeKind === 'sqlite'
          ? ['instances.input', 'steps.name', 'steps.output']
          : ['instance_rows.input', 'steps.name', 'steps.output'];
      expect(stored).toEqual(kept);
    } finally {
      await t.close();
    }
  }, 120_000);
});

describe('tracking a redacted field', () => {
  const define = (track: Record<string, string>, redact: string[]) => () =>
    defineIntegration({ id: 'pay-card', mode: 'async', redact, track, handler: () => {} });

  it('is refused when the integration is defined, naming the field and the redact entry', () => {
    expect(define({ card: 'card.number' }, ['card.number'])).toThrow(InvalidDefinitionError);
    expect(define({ card: 'card.number' }, ['card.number'])).toThrow(
      /track\.card follows "card\.number", but it is redacted by "card\.number"/,
    );
    expect(define({ phone: 'contacts.0.phone' }, ['contacts.*.phone'])).toThrow(
      /redacted by "contacts\.\*\.phone"/,
    );
    expect(define({ login: 'user.password' }, [])).toThrow(/"password" is a secret field name/);
    expect(define({ card: 'card.holder' }, ['card.number'])).not.toThrow();
    expect(define({}, ['card.' as string])).toThrow(/redact must be a list of dotted field paths/);
  });
});

describe('Redactor', () => {
  it('masks values by path and name, their occurrences in text, JSON-escaped and URL-encoded', () => {
    const input = { card: { number: '4111 "CANARY"' }, password: 'hunter2', cvv: 7, note: 'x' };
    const redactor = Redactor.of(['card.number', 'cvv'], input);
    expect(redactor.shown(input)).toEqual({
      card: { number: '[redacted]' },
      password: '[redacted]',
      cvv: '[redacted]',
      note: 'x',
    });
    expect(redactor.text('card 4111 "CANARY" declined for hunter2')).toBe(
      'card [redacted] declined for [redacted]',
    );
    expect(redactor.text(JSON.stringify({ n: '4111 "CANARY"' }))).toBe('{"n":"[redacted]"}');
    expect(redactor.text(`/cards/${encodeURIComponent('4111 "CANARY"')}`)).toBe('/cards/[redacted]');
    // A one-character secret is masked where it stands, not searched for in text.
    expect(redactor.json({ code: 7, text: 'attempt 7 of 9' })).toEqual({
      code: '[redacted]',
      text: 'attempt 7 of 9',
    });
    // A log line's error: same class, message, stack, fields and cause masked.
    class CallError extends Error {
      constructor(readonly url: string) {
        super(`GET ${url} failed`, { cause: new Error('hunter2 refused') });
      }
    }
    const logged = redactor.logged(new CallError('/cards/4111%20%22CANARY%22')) as CallError;
    expect(logged).toBeInstanceOf(CallError);
    expect([logged.message, logged.url, (logged.cause as Error).message]).toEqual([
      'GET /cards/[redacted] failed',
      '/cards/[redacted]',
      '[redacted] refused',
    ]);
    expect(logged.stack).not.toContain('CANARY');
    expect(Redactor.NONE.json({ list: [{ token: 't-1', id: 1 }] })).toEqual({
      list: [{ token: '[redacted]', id: 1 }],
    });
    const unchanged = { a: 1, b: ['c'] };
    expect(redactor.json(unchanged)).toBe(unchanged);
  });
});
