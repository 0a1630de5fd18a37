/**
 * E-mail through `smtpConnection` against a real SMTP server on 127.0.0.1 (smtp-server): the step's
 * idempotency key is the Message-ID, the same when a retried step sends again; what each send
 * records; a greylisting 4xx retried and a 5xx failing at once; a server that is down retried and
 * circuit-broken; refused credentials failing at once; a canary password in no database byte, log
 * line or event; and the options checked when defined.
 */
import { readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { secret } from '../../src/connections/secret.js';
import { messageIdOf, smtpConnection } from '../../src/connections/smtp.js';
import { defineIntegration } from '../../src/define/integration.js';
import type { ActivityEvent } from '../../src/model.js';
import type { SqliteStore } from '../../src/store/sqlite/store.js';
import { STORE_KINDS, testEngine, waitForStatus } from '../support/engine.js';
import { smtpServer } from '../support/smtp.js';
import { waitFor } from '../support/wait.js';

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

async function server(options: Parameters<typeof smtpServer>[0] = {}) {
  const smtp = await smtpServer(options);
  closers.push(() => smtp.close());
  return smtp;
}

const calls = (events: ActivityEvent[]) => events.filter((event) => event.type === 'connection.call');

describe.each(STORE_KINDS)('smtpConnection (%s)', (storeKind) => {
  it('sends in a step with its idempotency key as Message-ID, the same when a retried step sends again', async () => {
    const smtp = await server();
    const mail = smtpConnection('mail', {
      host: smtp.host,
      port: smtp.port,
      from: '"Shop" <orders@shop.example>',
    });
    const confirm = defineIntegration({
      id: 'confirm-order',
      mode: 'async',
      retry: { maxAttempts: 3, initialDelayMs: 10 },
      async handler(ctx) {
        await ctx.step('confirm mail', async () => {
          const sent = await ctx.use(mail).send({
            to: ['anna@example.com', 'ben@example.com'],
            subject: 'Order A-1 confirmed',
            text: 'Thank you.',
          });
          // The mail went out, then the step failed: the retry sends it again.
          if (ctx.attempt === 1) throw new Error('the step failed after sending');
          return sent.messageId;
        });
      },
    });
    const { engine, close } = await testEngine([confirm], { storeKind, connections: [mail] });
    closers.push(close);
    const { instanceId } = await engine.accept('confirm-order', {});
    const done = await waitForStatus(engine, instanceId);
    expect(done.status).toBe('succeeded');
    const expected = `<${instanceId}%3Aconfirm%20mail%3A0@shop.example>`;
    expect(smtp.received.map((m) => m.messageId)).toEqual([expected, expected]);
    expect(smtp.received[0]).toMatchObject({
      from: 'orders@shop.example',
      to: ['anna@example.com', 'ben@example.com'],
      subject: 'Order A-1 confirmed',
    });
    const detail = await engine.getDetail(instanceId);
    const sends = calls(detail.events);
    expect(sends).toHaveLength(2);
    for (const [index, send] of sends.entries()) {
      expect(send.data).toMatchObject({
        connection: 'mail',
        type: 'smtp',
        operation: 'send',
        messageId: expected,
        recipients: 2,
        accepted: 2,
        rejected: 0,
        reply: 250,
        step: 'confirm mail',
        attempt: index + 1,
      });
    }
    // Counts only: no address, subject or body is recorded with the call.
    const recorded = JSON.stringify(sends);
    for (const text of ['anna@example.com', 'Order A-1', 'Thank you']) expect(recorded).not.toContain(text);
  });
});

describe('smtpConnection', () => {
  const sender = (mail: ReturnType<typeof smtpConnection>, maxAttempts = 3) =>
    defineIntegration({
      id: 'notify',
      mode: 'async',
      retry: { maxAttempts, initialDelayMs: 20, maxDelayMs: 50 },
      async handler(ctx) {
        await ctx.step('notify', () =>
          ctx.use(mail).send({ to: 'ops@example.com', subject: 'Hi', text: 'x' }),
        );
      },
    });

  it('retries a greylisting 451 and fails at once on a 550, saying why', async () => {
    const smtp = await server();
    const mail = smtpConnection('mail', { host: smtp.host, port: smtp.port, from: 'tandem@example.com' });
    const { engine, close } = await testEngine([sender(mail)], { connections: [mail] });
    closers.push(close);
    smtp.replyNext(451, 'Greylisted, try again later');
    const greylisted = await engine.accept('notify', {});
    const sent = await waitForStatus(engine, greylisted.instanceId);
    expect(sent).toMatchObject({ status: 'succeeded', attempt: 2 });
    expect(smtp.received).toHaveLength(1);

    smtp.replyNext(550, 'Mailbox unavailable');
    const refused = await engine.accept('notify', {});
    const failed = await waitForStatus(engine, refused.instanceId);
    expect(failed).toMatchObject({ status: 'failed', attempt: 1 });
    expect(failed.error).toMatchObject({
      name: 'ConnectionError',
      code: 'smtp-rejected',
      details: { connection: 'mail', responseCode: 550 },
    });
    expect(failed.error!.message).toContain('Mailbox unavailable');
    const events = calls((await engine.getDetail(refused.instanceId)).events);
    expect(events.map((event) => event.data.error)).toEqual(['550']);
  });

  it('retries while the server is down: the circuit opens without using attempts, and the mail goes once it is back', async () => {
    const smtp = await server();
    await smtp.down();
    const mail = smtpConnection('mail', {
      host: smtp.host,
      port: smtp.port,
      from: 'tandem@example.com',
      circuit: { failures: 2, reprobeMs: 200 },
    });
    const { engine, close } = await testEngine([sender(mail, 3)], { connections: [mail] });
    closers.push(close);
    const { instanceId } = await engine.accept('notify', {});
    // However slowly a loaded machine runs the first attempts: the circuit opens, the instance waits.
    await waitFor(
      async () =>
        mail.circuitState() !== 'closed' && (await engine.getInstance(instanceId)).status === 'retrying',
      'the circuit to open while the instance waits to retry',
    );
    await smtp.up();
    const done = await waitForStatus(engine, instanceId);
    expect(done.status).toBe('succeeded');
    // More tries than attempts: the refused ones that opened the circuit did not use any up.
    const tries = calls((await engine.getDetail(instanceId)).events);
    expect(tries.length).toBeGreaterThan(done.attempt);
    expect(tries.at(0)!.data.error).toBe('ECONNREFUSED');
    expect(smtp.received).toHaveLength(1);
  });

  it('refused credentials fail at once, and a canary password is in no database byte, log line or event', async () => {
    const canary = `canary-${Math.random().toString(36).slice(2)}-smtp`;
    const env = { SMTP_PASSWORD: canary, SMTP_WRONG: `${canary}-wrong` };
    const smtp = await server({ credentials: { username: 'tandem', password: canary } });
    const good = smtpConnection('mail', {
      host: smtp.host,
      port: smtp.port,
      from: 'tandem@example.com',
      username: 'tandem',
      password: secret('SMTP_PASSWORD', env),
    });
    const wrong = smtpConnection('wrong-mail', {
      host: smtp.host,
      port: smtp.port,
      from: 'tandem@example.com',
      username: 'tandem',
      password: secret('SMTP_WRONG', env),
    });
    let logs = '';
    const logger = pino(
      { level: 'trace' },
      new Writable({
        write(chunk, _encoding, done) {
          logs += chunk.toString();
          done();
        },
      }),
    );
    const send = (id: string, connection: typeof good) =>
      defineIntegration({
        id,
        mode: 'async',
        retry: { maxAttempts: 3, initialDelayMs: 20 },
        handler: (ctx) =>
          ctx.step('send', () =>
            ctx.use(connection).send({ to: 'ops@example.com', subject: 'S', text: 'T' }),
          ),
      });
    const t = await testEngine([send('good', good), send('wrong', wrong)], {
      connections: [good, wrong],
      logger,
    });
    closers.push(() => t.close());
    const ok = await waitForStatus(t.engine, (await t.engine.accept('good', {})).instanceId);
    const refused = await waitForStatus(t.engine, (await t.engine.accept('wrong', {})).instanceId);
    expect(ok.status).toBe('succeeded');
    expect(refused).toMatchObject({ status: 'failed', attempt: 1, error: { code: 'auth-failed' } });
    expect(smtp.received).toHaveLength(1);
    const events = JSON.stringify(await t.store.getEvents({ limit: 1_000 }));
    const details = JSON.stringify([await t.engine.getDetail(ok.id), await t.engine.getDetail(refused.id)]);
    await t.engine.stop();
    const db = (t.store as SqliteStore).db;
    db.pragma('wal_checkpoint(FULL)');
    const bytes =
      readFileSync(db.name).toString('latin1') +
      readFileSync(`${db.name}-wal`, { flag: 'r' }).toString('latin1');
    for (const [where, text] of [
      ['database', bytes],
      ['logs', logs],
      ['events', events],
      ['instances', details],
    ] as const) {
      expect(text.includes(canary), `canary in ${where}`).toBe(false);
      expect(
        text.includes(Buffer.from(`\0tandem\0${canary}-wrong`).toString('base64')),
        `AUTH in ${where}`,
      ).toBe(false);
    }
    expect(events).toContain('connection.call');
  });

  it('writes any key as a valid Message-ID, and checks its options when defined', () => {
    expect(messageIdOf('0190-ab:fulfil order:3', 'shop.example')).toBe(
      '<0190-ab%3Afulfil%20order%3A3@shop.example>',
    );
    expect(messageIdOf('a.b:ü', 'x.example')).toBe('<a%2Eb%3A%C3%BC@x.example>');
    expect(() => smtpConnection('mail', { host: '' })).toThrow(
      /Connection "mail": host must be a non-empty string/,
    );
    expect(() => smtpConnection('mail', { host: 'smtp.example.com', port: 0 })).toThrow(
      /port must be an integer/,
    );
    expect(() => smtpConnection('mail', { host: 'smtp.example.com', username: 'u' })).toThrow(
      /username and password go together/,
    );
    expect(() =>
      smtpConnection('mail', { host: 'smtp.example.com', messageIdDomain: 'not a domain' } as never),
    ).toThrow(/messageIdDomain must be a domain name/);
    expect(() => smtpConnection('Mail', { host: 'smtp.example.com' })).toThrow(
      /Connection id "Mail" is invalid/,
    );
    expect(() => smtpConnection('mail', { host: 'smtp.example.com', passwrod: 'x' } as never)).toThrow(
      /unknown option "passwrod"/,
    );
  });
});
