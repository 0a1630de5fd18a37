/**
 * Durable waits on the engine's side: what an attempt's `ctx.sleep`/`ctx.waitForEvent`/
 * `ctx.callback` read and arm through (the store's wait records, the callback URL's base, the
 * look-back window), and the two ways the outside world resumes a waiting instance — a business
 * event (`POST /api/events`, `engine.sendEvent`) and a partner's callback (`POST /callbacks/…`).
 * The matching, the no-lost-wake-up guarantee and single use are the store's, in one transaction.
 */
import { timingSafeEqual } from 'node:crypto';
import { InvalidInputError, TandemError } from '../errors.js';
import { isStorableText, toStoredJson } from '../json.js';
import type { Actor, Json } from '../model.js';
import type {
  ArmCallback,
  NewBusinessEvent,
  SentEventOutcome,
  Store,
  WaitKey,
  WaitRecord,
} from '../store/store.js';
import type { AttemptWaits } from './attempt.js';
import { hashCallbackSecret } from './attempt-context.js';
import { Batcher } from './batcher.js';
import type { Clock } from './clock.js';

/** Default look-back window: a wait also takes a matching event received up to an hour before it began. */
export const DEFAULT_LOOK_BACK_MS = 3_600_000;

/** A business event as sent (`POST /api/events`). */
export interface SendEvent {
  /** The event's name (`employee.created`). */
  name: string;
  /** Its JSON payload; waits match on its top-level fields. */
  payload?: Json;
  /** Makes the send idempotent: a second event with this id within the look-back window changes nothing. */
  id?: string;
}

export interface SentEvent {
  /** The event's id: the one given, or its sequence number as text. */
  eventId: string;
  /** True when an event with this id was already received: nothing was stored or resumed. */
  duplicate: boolean;
  /** Instances whose wait this event resolved. */
  resumed: string[];
}

export interface WaitsOptions {
  store: Store;
  clock: Clock;
  lookBackMs: number;
  /** The callback URL's base until a server names it. */
  publicUrl?: string;
  /** Resumed instances are due now: the dispatcher should look. */
  wake: () => void;
  /** One transaction for all events sent in a tick (default), or one per event. */
  groupCommit?: boolean;
}

export class Waits implements AttemptWaits {
  readonly lookBackMs: number;
  private base: string;
  /** Whether the base was named (an option, a server's `publicUrl`) rather than guessed. */
  private named: boolean;
  /**
   * Group commit of sends: the events of callers sending at once share one transaction (on
   * PostgreSQL also one hold of the names' locks), each with the outcome it would have alone.
   */
  private readonly sends: Batcher<NewBusinessEvent, SentEventOutcome>;

  constructor(private readonly options: WaitsOptions) {
    this.lookBackMs = options.lookBackMs;
    // Eager: a caller that sends one event after another should not wait a tick behind the claims
    // its own events caused.
    this.sends = new Batcher((events) => options.store.sendEvents(events, options.clock.now()), 500, true);
    this.base = trimSlash(options.publicUrl ?? 'http://localhost:3000');
    this.named = options.publicUrl !== undefined;
  }

  settle(key: WaitKey, now: number): Promise<WaitRecord | null> {
    return this.options.store.settleWait(key, now);
  }

  armCallback(request: ArmCallback): Promise<WaitRecord | null> {
    return this.options.store.armCallback(request);
  }

  callbackBase(): string {
    return this.base;
  }

  /**
   * The server's public address (`publicUrl` in the config, else where it listens). A `fallback`
   * (where a server listens) does not replace an address that was named.
   */
  setPublicUrl(url: string, options: { fallback?: boolean } = {}): void {
    if (options.fallback && this.named) return;
    this.base = trimSlash(url);
    this.named ||= !options.fallback;
  }

  /** `actor`: the management token that sent it, recorded on the `wait.resumed` events it writes. */
  async sendEvent(event: SendEvent, actor?: Actor): Promise<SentEvent> {
    const issues: { path: string; message: string }[] = [];
    if (event === null || typeof event !== 'object')
      throw new InvalidInputError([{ path: '', message: 'An event is an object: { name, payload?, id? }' }]);
    const { name, payload = null, id } = event;
    if (typeof name !== 'string' || name === '' || name.length > 200 || !isStorableText(name))
      issues.push({ path: 'name', message: 'must be an event name of 1–200 characters' });
    if (id !== undefined && (typeof id !== 'string' || id === '' || id.length > 200 || !isStorableText(id)))
      issues.push({ path: 'id', message: 'must be text of 1–200 characters' });
    if (issues.length > 0) throw new InvalidInputError(issues);
    const payloadJson = toStoredJson(payload, 'The event payload');
    const stored: NewBusinessEvent = {
      name,
      id: id ?? null,
      payloadJson,
      receivedAt: this.options.clock.now(),
    };
    if (actor !== undefined) stored.actor = actor;
    const sent =
      this.options.groupCommit === false
        ? await this.options.store.sendEvent(stored, stored.receivedAt)
        : await this.sends.push(stored);
    if (sent.resumed.length > 0) this.options.wake();
    return { eventId: id ?? String(sent.seq), duplicate: sent.duplicate, resumed: sent.resumed };
  }

  /**
   * A partner's call to a callback URL (`<id>.<secret>`): resumes the waiting instance with the body,
   * once. The secret is compared with the stored hash in constant time.
   */
  async answerCallback(token: string, body: Json): Promise<{ instanceId: string }> {
    const dot = typeof token === 'string' ? token.indexOf('.') : -1;
    const tokenId = dot > 0 ? token.slice(0, dot) : '';
    const secret = dot > 0 ? token.slice(dot + 1) : '';
    const notFound = () =>
      new TandemError('callback-not-found', 'No callback has this URL: use it exactly as it was handed out');
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(tokenId) || !/^[A-Za-z0-9_-]{1,128}$/.test(secret)) throw notFound();
    const stored = await this.options.store.callbackTokenHash(tokenId);
    const given = Buffer.from(hashCallbackSecret(secret), 'hex');
    // Compared even when the id is unknown, so that the time taken does not tell which ids exist.
    const expected = Buffer.from(stored ?? '0'.repeat(64), 'hex');
    if (!timingSafeEqual(given, expected) || stored === null) throw notFound();
    const payloadJson = toStoredJson(body, 'The callback body');
    const outcome = await this.options.store.resolveCallback(tokenId, payloadJson, this.options.clock.now());
    switch (outcome.outcome) {
      case 'resumed':
        this.options.wake();
        return { instanceId: outcome.instanceId };
      case 'not-found':
        throw notFound();
      case 'used':
        throw new TandemError(
          'callback-used',
          'This callback was already answered: a callback resumes its instance once',
          {
            resolvedAt: new Date(outcome.resolvedAt).toISOString(),
          },
        );
      case 'expired':
        throw new TandemError(
          'callback-expired',
          'This callback has expired: its instance went on without it',
          {
            expiredAt: new Date(outcome.expiredAt).toISOString(),
          },
        );
    }
  }
}

const trimSlash = (url: string) => url.replace(/\/+$/, '');
