/**
 * The activity webhook: the activity stream sent to a URL as CloudEvents, in stream order, at least
 * once. Its position is a cursor kept in the store (a feed), moved only after the receiver took the
 * events before it, so a restart or a crash resends at most the events since the last move and
 * skips none; a lease on the feed lets one process of a cluster send at a time (order needs one
 * sender). While the receiver is down or refuses, the same event is retried with a growing delay:
 * nothing is skipped, the stream waits.
 */
import { CloudEvent, HTTP } from 'cloudevents';
import type { Logger } from 'pino';
import { reveal, type SecretValue } from '../connections/secret.js';
import { InvalidDefinitionError } from '../errors.js';
import type { ActivityEvent, ActivityType } from '../model.js';
import type { Store } from '../store/store.js';

/** Settings of the activity webhook (`defineConfig({ activityWebhook })`). */
export interface ActivityWebhookOptions {
  /** Where the events are POSTed. */
  url: string;
  /** Only events of these types. Default: every type. */
  types?: ActivityType[];
  /**
   * `structured` (default): one event per request, `application/cloudevents+json`; `binary`: one
   * event per request, its attributes as `ce-*` headers and its data as the JSON body; `batch`: up to
   * `batchSize` events per request, `application/cloudevents-batch+json`.
   */
  mode?: 'structured' | 'binary' | 'batch';
  /** The events' `source` (a URI reference). Default: `server.publicUrl`, else `tandem`. */
  source?: string;
  /** Headers sent with every request (e.g. `authorization: secret('ACTIVITY_TOKEN')`). */
  headers?: Record<string, SecretValue>;
  /** Events read per page of the stream (and sent per request in batch mode). Default 100. */
  batchSize?: number;
  /** How long one request may take. Default 10 s. */
  timeoutMs?: number;
  /** How often the stream is read for new events while there are none. Default 1 s. */
  pollIntervalMs?: number;
  /** The delay before a failed request is sent again: doubles from `minMs` up to `maxMs`. Default 1 s to 60 s. */
  retry?: { minMs?: number; maxMs?: number };
}

/** The feed's name in the store: one activity webhook per deployment. */
const ACTIVITY_WEBHOOK_FEED = 'activity-webhook';
/** The CloudEvents `type` of an activity event: this prefix and the activity type (`tandem.step.succeeded`). */
const ACTIVITY_TYPE_PREFIX = 'tandem.';

const LEASE_MS = 30_000;
/** How long a stopping process lets a request in flight finish. */
const STOP_GRACE_MS = 2_000;

/** An activity event as a CloudEvent: `id` the event's id, `subject` its instance, `data` the event. */
function activityCloudEvent(event: ActivityEvent, source: string): CloudEvent<Record<string, unknown>> {
  return new CloudEvent({
    specversion: '1.0',
    id: String(event.id),
    source,
    type: `${ACTIVITY_TYPE_PREFIX}${event.type}`,
    subject: event.instanceId,
    time: new Date(event.at).toISOString(),
    datacontenttype: 'application/json',
    integration: event.integrationId,
    data: {
      id: event.id,
      instanceId: event.instanceId,
      integrationId: event.integrationId,
      run: event.run,
      type: event.type,
      at: event.at,
      data: event.data,
    },
  });
}

type Delivery = { ok: true } | { ok: false; reason: string };

/** Sends the activity stream to the webhook while started; see the file comment. */
export class ActivityWebhook {
  private readonly source: string;
  private readonly mode: 'structured' | 'binary' | 'batch';
  private readonly batchSize: number;
  private readonly timeoutMs: number;
  private readonly pollIntervalMs: number;
  private readonly minRetryMs: number;
  private readonly maxRetryMs: number;
  private readonly stopping = new AbortController();
  /** Aborts a request in flight: a while after stopping, so that an answer on its way is not lost. */
  private readonly abandoning = new AbortController();
  private loop: Promise<void> | null = null;
  /** Where a feed that has no row yet starts: the stream's end when this process first looked. */
  private initial: string | null = null;
  private failures = 0;
  /** The feed's cursor as this process last wrote or read it while holding the lease; null: not held. */
  private position: string | null = null;
  /** When this process last took or renewed the lease. */
  private renewedAt = 0;

  constructor(
    private readonly store: Store,
    private readonly options: ActivityWebhookOptions,
    private readonly owner: string,
    private readonly now: () => number,
    private readonly logger: Logger,
    publicUrl?: string,
  ) {
    this.source = options.source ?? publicUrl ?? 'tandem';
    this.mode = options.mode ?? 'structured';
    this.batchSize = options.batchSize ?? 100;
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.pollIntervalMs = options.pollIntervalMs ?? 1_000;
    this.minRetryMs = options.retry?.minMs ?? 1_000;
    this.maxRetryMs = Math.max(this.minRetryMs, options.retry?.maxMs ?? 60_000);
    try {
      // A source that is no URI reference would fail every send: refused at start instead.
      activityCloudEvent(
        { id: 0, instanceId: 'i', integrationId: 'i', run: 1, type: 'accepted', at: 0, data: {} },
        this.source,
      );
    } catch (error) {
      throw new InvalidDefinitionError(
        `activityWebhook.source "${this.source}" is not a URI reference: ${(error as Error).message}`,
      );
    }
  }

  start(): void {
    this.loop ??= this.run().catch((error: unknown) => {
      this.logger.error({ err: error }, 'the activity webhook stopped');
    });
  }

  /**
   * Stops sending (a request in flight gets a short grace, then is aborted: its events are sent again
   * by the next holder) and
   * gives the lease up, so that another process need not wait for it to expire.
   */
  async stop(): Promise<void> {
    this.stopping.abort();
    // A request in flight may finish (its events then count as delivered), for a short while.
    const abandon = setTimeout(() => this.abandoning.abort(), Math.min(this.timeoutMs, STOP_GRACE_MS));
    await this.loop;
    clearTimeout(abandon);
    if (this.position === null) return;
    await this.store
      .advanceFeed({
        name: ACTIVITY_WEBHOOK_FEED,
        owner: this.owner,
        cursor: this.position,
        // Expired as of now: the next process's claim, even in this very millisecond, takes it.
        leaseMs: -1,
        now: this.now(),
      })
      .catch((error: unknown) => this.logger.warn({ err: error }, 'the activity webhook kept its lease'));
  }

  private get stopped(): boolean {
    return this.stopping.signal.aborted;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      try {
        const delay = await this.round();
        await this.sleep(delay);
      } catch (error) {
        // The store is unreachable or closing: try again later, as the dispatcher does.
        if (this.stopped) return;
        this.logger.warn({ err: error }, 'the activity webhook could not read its feed');
        await this.sleep(this.pollIntervalMs);
      }
    }
  }

  /**
   * The feed's cursor while this process holds its lease, renewed once a third of it has passed
   * (an idle holder writes every 10 s, not at every poll); null while another process holds it.
   */
  private async hold(): Promise<string | null> {
    const now = this.now();
    if (this.position !== null && now - this.renewedAt < LEASE_MS / 3) return this.position;
    this.initial ??= await this.store.eventStreamHead();
    this.position = await this.store.claimFeed({
      name: ACTIVITY_WEBHOOK_FEED,
      owner: this.owner,
      initial: this.initial,
      leaseMs: LEASE_MS,
      now,
    });
    if (this.position !== null) this.renewedAt = now;
    return this.position;
  }

  /** One round: take the lease, read a page, send it; returns how long to wait before the next. */
  private async round(): Promise<number> {
    const cursor = await this.hold();
    if (cursor === null) return Math.max(this.pollIntervalMs, LEASE_MS / 3); // Another process sends.
    const page = await this.store.readEventStream({
      after: cursor,
      limit: this.batchSize,
      ...(this.options.types ? { types: this.options.types } : {}),
    });
    let sent = cursor;
    const advance = async (to: string): Promise<boolean> => {
      const now = this.now();
      const held = await this.store.advanceFeed({
        name: ACTIVITY_WEBHOOK_FEED,
        owner: this.owner,
        cursor: to,
        leaseMs: LEASE_MS,
        now,
      });
      this.position = held ? to : null;
      if (held) this.renewedAt = now;
      return held;
    };
    const groups = this.mode === 'batch' ? [page.events] : page.events.map((event) => [event]);
    for (const group of groups) {
      if (group.length === 0) continue;
      const delivery = await this.deliver(group);
      if (delivery.ok) {
        // Taken by the receiver, even if the process is stopping now: not to be sent again.
        this.failures = 0;
        sent = group[group.length - 1]!.cursor;
      }
      if (this.stopped) break;
      if (!delivery.ok) {
        this.failures++;
        const delay = Math.min(this.maxRetryMs, this.minRetryMs * 2 ** Math.min(this.failures - 1, 30));
        this.logger.warn(
          { url: this.options.url, event: group[0]!.id, failures: this.failures, retryInMs: delay },
          `the activity webhook could not deliver: ${delivery.reason}`,
        );
        if (sent !== cursor) await advance(sent);
        return delay;
      }
      // A long page keeps the lease: renewed well before it could expire.
      if (this.now() - this.renewedAt > LEASE_MS / 3 && !(await advance(sent))) return this.pollIntervalMs;
    }
    if (this.stopped) {
      if (sent !== cursor) await advance(sent);
      return 0;
    }
    // The page's own cursor: past events of other types too, even when none was sent.
    if (page.cursor !== cursor) await advance(page.cursor);
    return page.events.length === this.batchSize ? 0 : this.pollIntervalMs;
  }

  /** Sends events in one request; any answer but a 2xx is a failure (retried). */
  private async deliver(events: ActivityEvent[]): Promise<Delivery> {
    const cloudEvents = events.map((event) => activityCloudEvent(event, this.source));
    let message: { headers: Record<string, string>; body: string };
    if (this.mode === 'batch') {
      message = {
        headers: { 'content-type': 'application/cloudevents-batch+json' },
        body: JSON.stringify(cloudEvents),
      };
    } else {
      const encoded =
        this.mode === 'binary' ? HTTP.binary(cloudEvents[0]!) : HTTP.structured(cloudEvents[0]!);
      message = { headers: encoded.headers as Record<string, string>, body: String(encoded.body) };
    }
    try {
      // Read at every request: a rotated secret is picked up, and a missing one is a failed delivery.
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(this.options.headers ?? {})) headers[name] = reveal(value);
      const response = await fetch(this.options.url, {
        method: 'POST',
        headers: { ...headers, ...message.headers },
        body: message.body,
        signal: AbortSignal.any([this.abandoning.signal, AbortSignal.timeout(this.timeoutMs)]),
      });
      await response.body?.cancel();
      return response.ok ? { ok: true } : { ok: false, reason: `HTTP ${response.status}` };
    } catch (error) {
      const cause = (error as { cause?: { code?: string } }).cause?.code;
      return { ok: false, reason: cause ?? String((error as Error).message ?? error) };
    }
  }

  /** Waits, or less when stopped. */
  private sleep(ms: number): Promise<void> {
    if (ms <= 0 || this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.stopping.signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.stopping.signal.addEventListener('abort', done, { once: true });
    });
  }
}
