/**
 * E-mail as a connection (nodemailer): `ctx.use(mail).send({ to, subject, text })` in a step. The
 * call's idempotency key (instance + step + the call's place in it) becomes the Message-ID, so a
 * step retried after a send that went through is, to the receiving side, the same message again
 * rather than a new one. Each send is one recorded `connection.call` under the connection's limits
 * and circuit breaker (./guard.ts); what is recorded is counts, the Message-ID and the server's
 * reply code, never addresses, subject or body. Credentials are read from their secrets when a
 * mail is sent, so a rotated password is used by the next send and none is kept in the connection.
 */
import type SMTPTransport from 'nodemailer/lib/smtp-transport';
import { z } from 'zod';
import {
  between,
  checkOptions,
  integer,
  nonEmptyText,
  options as optionsOf,
  timerMs,
} from '../define/options.js';
import { TandemError } from '../errors.js';
import type { Json } from '../model.js';
import type { LimitStore } from '../store/store.js';
import type { CircuitOptions, CircuitState } from './circuit.js';
import {
  type BindableConnection,
  type CallContext,
  type CallOutcome,
  CONNECTION,
  ConnectionError,
} from './connection.js';
import { checkConnectionId, circuitOption, secretValue } from './definition.js';
import { ConnectionGuard, type Failure } from './guard.js';
import { reveal, type SecretValue } from './secret.js';

export interface SmtpConnectionOptions {
  host: string;
  /** Default 465 with `secure`, else 587. */
  port?: number;
  /** TLS from the first byte (port 465). Default false: plain, upgraded by STARTTLS when the server offers it. */
  secure?: boolean;
  /** Refuse to send unless the server upgrades the connection with STARTTLS. Default false. */
  requireTls?: boolean;
  /** Whether the server's certificate must be valid. Default true. */
  rejectUnauthorized?: boolean;
  /** Login; both or neither. `secret('NAME')` reads the value when a mail is sent. */
  username?: SecretValue;
  password?: SecretValue;
  /** The sender of mails that name none (`"Tandem" <tandem@example.com>`). */
  from?: string;
  /** The domain of Message-IDs. Default: the sender's domain. */
  messageIdDomain?: string;
  /** Longest wait for the connection, the greeting and each reply, in ms. Default 30 s. */
  timeout?: number;
  /** Sends in flight at once (per process). Default 4. */
  maxConcurrency?: number;
  /** Sends started per second at most (per process). Default unlimited. */
  ratePerSecond?: number;
  /** Circuit breaker; `false` turns it off. */
  circuit?: CircuitOptions | false;
}

/** One mail. Addresses are `name@domain` or `"Name" <name@domain>`. */
export interface Mail {
  to: string | string[];
  cc?: string | string[];
  bcc?: string | string[];
  /** Default: the connection's `from`. */
  from?: string;
  replyTo?: string;
  subject: string;
  text?: string;
  html?: string;
  /** Extra headers (not Message-ID: that one is the call's idempotency key). */
  headers?: Record<string, string>;
}

export interface SentMail {
  /** `<key@domain>`: the same for every attempt of the step. */
  messageId: string;
  /** Recipients the server accepted, and those it refused (a mail reaching some of them is sent). */
  accepted: string[];
  rejected: string[];
  /** The server's last reply (`250 2.0.0 Ok: queued as …`). */
  response: string;
}

/** What `ctx.use(smtpConnection)` gives a handler. */
export interface SmtpClient {
  /** Sends one mail; resolves once the server took it. */
  send(mail: Mail): Promise<SentMail>;
}

const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_CONCURRENCY = 4;

/** Characters a Message-ID's left part may hold as they are (RFC 5322 atext, without `%`, `.`). */
const PLAIN = /[A-Za-z0-9!#$&'*+\-/=?^_`{|}~]/;

/**
 * The Message-ID of a call: its idempotency key, with every character outside RFC 5322's atext
 * written as `%XX` (the key's `:` separators, a step name's spaces), at the domain.
 */
export function messageIdOf(idempotencyKey: string, domain: string): string {
  let left = '';
  for (const char of idempotencyKey) {
    left += PLAIN.test(char)
      ? char
      : [...Buffer.from(char, 'utf8')]
          .map((byte) => `%${byte.toString(16).toUpperCase().padStart(2, '0')}`)
          .join('');
  }
  return `<${left}@${domain}>`;
}

/** The domain of an address (`"Shop" <orders@shop.example>` → `shop.example`), or null. */
function domainOf(address: string | undefined): string | null {
  const match = address ? /@([A-Za-z0-9.-]+)>?\s*$/.exec(address) : null;
  return match ? match[1]!.toLowerCase() : null;
}

const listOf = (value: string | string[] | undefined) =>
  value === undefined ? [] : Array.isArray(value) ? value : [value];

/** Failures that leave no doubt the mail never reached the server: no connection was made. */
const NOT_CONNECTED = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);

interface NodemailerError extends Error {
  code?: string;
  originalCode?: string;
  responseCode?: number;
  permanent?: boolean;
  response?: string;
  timeoutType?: string;
}

export class SmtpConnection implements BindableConnection<SmtpClient> {
  readonly type = 'smtp' as const;
  readonly [CONNECTION] = true;
  readonly target: string;
  private readonly guard: ConnectionGuard;
  private readonly port: number;

  constructor(
    readonly id: string,
    readonly options: SmtpConnectionOptions,
  ) {
    this.port = options.port ?? (options.secure ? 465 : 587);
    this.target = `smtp://${options.host}:${this.port}`;
    this.guard = new ConnectionGuard(id, 'smtp', options, DEFAULT_CONCURRENCY);
  }

  watch(listener: (call: CallOutcome) => void): () => void {
    return this.guard.watch(listener);
  }

  circuitState(now?: number): CircuitState {
    return this.guard.circuitState(now);
  }

  /** Limits and circuit held for all processes of the store (see Connection.shareLimits). */
  shareLimits(store: LimitStore, onError: (error: unknown) => void): () => Promise<void> {
    return this.guard.shareLimits(store, onError);
  }

  /** Nothing to close: each send opens and closes its own SMTP session. */
  async close(): Promise<void> {}

  bind(next: () => CallContext): SmtpClient {
    return { send: (mail) => this.send(next(), mail) };
  }

  /** Sends one mail with the call's idempotency key as its Message-ID. */
  send(context: CallContext, mail: Mail): Promise<SentMail> {
    const from = mail.from ?? this.options.from;
    if (from === undefined) {
      return Promise.reject(
        new TandemError(
          'invalid-definition',
          `Connection "${this.id}": a mail needs a from address (or the connection's from)`,
        ),
      );
    }
    const domain = this.options.messageIdDomain ?? domainOf(from) ?? 'tandem.invalid';
    const messageId = messageIdOf(context.idempotencyKey, domain);
    const to = listOf(mail.to);
    const recipients = to.length + listOf(mail.cc).length + listOf(mail.bcc).length;
    return this.guard.run(
      context,
      { operation: 'send', messageId, recipients },
      (signal) => this.deliver({ ...mail, from }, messageId, signal),
      (thrown) => this.classify(thrown),
      (sent) => ({
        accepted: sent.accepted.length,
        rejected: sent.rejected.length,
        reply: Number.parseInt(sent.response, 10) || null,
      }),
    );
  }

  private async deliver(
    mail: Mail & { from: string },
    messageId: string,
    signal: AbortSignal,
  ): Promise<SentMail> {
    const timeout = this.options.timeout ?? DEFAULT_TIMEOUT_MS;
    const { username, password } = this.options;
    const settings: SMTPTransport.Options = {
      host: this.options.host,
      port: this.port,
      secure: this.options.secure ?? false,
      requireTLS: this.options.requireTls ?? false,
      tls: { rejectUnauthorized: this.options.rejectUnauthorized ?? true },
      connectionTimeout: timeout,
      greetingTimeout: timeout,
      socketTimeout: timeout,
      ...(username !== undefined && password !== undefined
        ? { auth: { user: reveal(username), pass: reveal(password) } }
        : {}),
    };
    // One transport per send: credentials are read now (a rotated secret is used at once) and no
    // idle session is kept open between the few mails an integration sends.
    // Loaded on the first send: a process that sends no mail does not load nodemailer.
    const { createTransport } = await import('nodemailer');
    const transport = createTransport(settings);
    const abort = () => transport.close();
    signal.addEventListener('abort', abort, { once: true });
    try {
      const headers = { ...mail.headers };
      for (const name of Object.keys(headers)) if (name.toLowerCase() === 'message-id') delete headers[name];
      const info = await transport.sendMail({
        from: mail.from,
        to: mail.to,
        ...(mail.cc === undefined ? {} : { cc: mail.cc }),
        ...(mail.bcc === undefined ? {} : { bcc: mail.bcc }),
        ...(mail.replyTo === undefined ? {} : { replyTo: mail.replyTo }),
        subject: mail.subject,
        ...(mail.text === undefined ? {} : { text: mail.text }),
        ...(mail.html === undefined ? {} : { html: mail.html }),
        headers,
        messageId,
      });
      const address = (value: unknown) =>
        typeof value === 'string' ? value : String((value as { address?: unknown }).address);
      return {
        messageId,
        accepted: (info.accepted ?? []).map(address),
        rejected: (info.rejected ?? []).map(address),
        response: info.response ?? '',
      };
    } finally {
      signal.removeEventListener('abort', abort);
      transport.close();
    }
  }

  /**
   * By the server's reply when there is one (nodemailer's `permanent`: a 5xx but 503 is for good, a
   * 4xx such as greylisting is not), else by what failed: no connection, a reset or a timeout may
   * be gone on the next attempt; refused credentials, TLS and a malformed mail are not.
   */
  private classify(thrown: unknown): Failure {
    const error = thrown as NodemailerError;
    const code = typeof error?.code === 'string' ? error.code : 'EUNKNOWN';
    const responseCode = typeof error?.responseCode === 'number' ? error.responseCode : null;
    const notSent =
      responseCode === null &&
      (NOT_CONNECTED.has(error?.originalCode ?? '') ||
        code === 'EDNS' ||
        error?.timeoutType === 'CONNECT_TIMEOUT');
    const retryable =
      responseCode !== null
        ? error.permanent !== true
        : code === 'ECONNECTION' || code === 'ESOCKET' || code === 'ETIMEDOUT' || code === 'EDNS';
    const kind =
      code === 'EAUTH' || code === 'ENOAUTH'
        ? 'auth-failed'
        : responseCode !== null
          ? retryable
            ? 'smtp-transient'
            : 'smtp-rejected'
          : retryable
            ? 'connection-failed'
            : 'smtp-error';
    // The server's reply, never the command: an AUTH command line may carry credentials.
    const reply = typeof error?.response === 'string' ? error.response.slice(0, 200) : null;
    const reason = responseCode !== null ? `${responseCode}` : (error?.originalCode ?? code);
    const details: Record<string, Json> = { connection: this.id, code, responseCode, reply };
    return {
      error: new ConnectionError(
        `smtp ${this.id}: ${reply ?? (error instanceof Error ? error.message : String(thrown)).slice(0, 200)}`,
        this.id,
        'smtp',
        kind,
        retryable,
        details,
        { cause: thrown },
      ),
      retryable,
      notSent,
      reason,
    };
  }
}

const smtpSchema = optionsOf({
  host: nonEmptyText,
  port: integer(1, 65_535).optional(),
  secure: z.boolean({ error: 'must be true or false' }).optional(),
  requireTls: z.boolean({ error: 'must be true or false' }).optional(),
  rejectUnauthorized: z.boolean({ error: 'must be true or false' }).optional(),
  username: secretValue.optional(),
  password: secretValue.optional(),
  from: nonEmptyText.optional(),
  messageIdDomain: z
    .string({ error: 'must be a domain name' })
    .regex(/^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$/, {
      error: 'must be a domain name',
    })
    .optional(),
  timeout: timerMs.optional(),
  maxConcurrency: integer(1, 10_000).optional(),
  ratePerSecond: between(0, 1_000_000, true).optional(),
  circuit: circuitOption,
} satisfies Record<keyof SmtpConnectionOptions, unknown>);

/**
 * An SMTP server to send e-mail through, from a step with `ctx.use(connection).send(mail)`.
 *
 * @example
 * const mail = smtpConnection('mail', {
 *   host: 'smtp.example.com', username: 'tandem', password: secret('SMTP_PASSWORD'),
 *   from: '"Shop" <orders@shop.example>',
 * });
 * await ctx.step('confirm', () => ctx.use(mail).send({ to: order.email, subject: 'Thank you', text }));
 */
export function smtpConnection(id: string, options: SmtpConnectionOptions): SmtpConnection {
  checkConnectionId(id);
  checkOptions(smtpSchema, options, `Connection "${id}"`);
  if ((options.username === undefined) !== (options.password === undefined)) {
    throw new TandemError('invalid-definition', `Connection "${id}": username and password go together`);
  }
  return new SmtpConnection(id, options);
}
