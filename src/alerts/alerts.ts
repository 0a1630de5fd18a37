/**
 * Alerts, wired into an engine: an observer that hears of failures, circuits and missed slots, a
 * backlog count on workers, the collector that makes bursts into messages, and the internal async
 * integration `tandem.alerts` whose instances deliver them. Delivery is Tandem's own durable work:
 * a message survives restarts, is retried with backoff while its receiver is down, and shows in the
 * console like any instance. A burst's fallback instance, stored when the burst opens, composes
 * the message from the store when the process died before storing its own. The engine hands in
 * what it knows through {@link AlertDeps}, so this module never imports the engine.
 */
import type { Logger } from 'pino';
import { HttpConnection } from '../connections/http.js';
import { type AnyIntegration, defineIntegration } from '../define/integration.js';
import type { RetryPolicy } from '../define/retry.js';
import type { EngineObserver } from '../engine/observer.js';
import { DUE, WAITING } from '../lifecycle/statuses.js';
import type { Instance, InstanceStatus } from '../model.js';
import type { ListRequest, Page } from '../store/store.js';
import { AlertCollector, failuresOf, type Gathered, gather } from './collector.js';
import { type AlertMessage, textOf, titleOf } from './message.js';
import { ALERTS_INTEGRATION, type AlertsOptions, checkAlerts } from './options.js';
import { sendWebhook, webhookTarget } from './webhook.js';

export { ALERTS_INTEGRATION } from './options.js';

const DEFAULT_GROUP_MS = 60_000;
const DEFAULT_BACKLOG_CHECK_MS = 60_000;
/** Back under the threshold only below this share of it, so that a backlog hovering at it does not flap. */
const BACKLOG_HYSTERESIS = 0.9;
/** Retried for about 35 days: a message is delivered once its receiver is back, or seen failed. */
const DEFAULT_RETRY: RetryPolicy = { maxAttempts: 10_000, initialDelayMs: 1_000, maxDelayMs: 300_000 };

/** The least a fallback waits past its burst's close before it looks for the burst's message. */
const FALLBACK_GRACE_MS = 30_000;
/** Instances read per page when a fallback looks through the store, and the most pages it reads. */
const PAGE = 1_000;
const MAX_PAGES = 20;
const STOPPED_NOTE =
  'From a process that stopped before sending its alert (circuit and schedule events of that process are not known).';

/** The input of a burst's fallback instance. */
export interface FallbackInput {
  type: 'tandem.alert-fallback';
  /** The process whose burst it is. */
  process: string;
  /** ISO time the burst opened. */
  from: string;
  /** ISO time from which finished failures are the burst's (a little before it opened). */
  since: string;
  /** The idempotency key the burst's own message has once stored. */
  messageKey: string;
}

/** Instances waiting for a worker (a durable wait is not work piling up). */
const BACKLOG: InstanceStatus[] = DUE.filter((status) => !WAITING.includes(status));

/** What an engine gives alerts once it is made. */
export interface AlertDeps {
  now(): number;
  logger: Logger;
  /** The engine's worker id: names the process in messages. */
  process: string;
  /** Where the server is reached (`server.publicUrl`, else where it listens). */
  publicUrl(): string;
  /**
   * Commits one message (or a burst's fallback) as an instance of the alerts integration,
   * idempotent by key; due at `runAt` (default: since the epoch, first in line).
   */
  commit(input: AlertMessage | FallbackInput, idempotencyKey: string, runAt?: number): Promise<void>;
  /** Instances in the given statuses (of one integration). */
  count(statuses: InstanceStatus[], integrationId?: string): Promise<number>;
  /** Reads instances as the API lists them (newest first). */
  listInstances(request: ListRequest): Promise<Page<Instance>>;
  /** The step each failed run stopped in. */
  failedSteps(instances: Pick<Instance, 'id' | 'run'>[]): Promise<Record<string, string>>;
  /** The async and scheduled integrations (whose failures are alerted), not the alerts one. */
  durableIntegrations(): string[];
}

export class Alerts {
  /** The internal integration whose instances deliver the messages; registered with the engine's own. */
  readonly integration: AnyIntegration;
  /** Hears what the engine does; registered with its observers. */
  readonly observer: EngineObserver;
  private collector: AlertCollector | null = null;
  private deps: AlertDeps | null = null;
  private backlogTimer: NodeJS.Timeout | null = null;
  private backlogAbove = false;
  private counting = false;

  constructor(private readonly options: AlertsOptions) {
    checkAlerts(options);
    const { webhook, email } = options;
    const target = webhook
      ? webhookTarget(
          webhook,
          // Not a registered connection: its circuit is not watched, so an alert receiver that is
          // down does not raise alerts about itself.
          (baseUrl, timeout) =>
            new HttpConnection(`${ALERTS_INTEGRATION}-webhook`, {
              baseUrl,
              ...(timeout === undefined ? {} : { timeout }),
            }),
        )
      : null;
    const compose = (fallback: FallbackInput) => this.compose(fallback);
    this.integration = defineIntegration({
      id: ALERTS_INTEGRATION,
      mode: 'async',
      description:
        'Delivers alerts (the config’s `alerts`): one instance per message, retried until delivered.',
      retry: { ...DEFAULT_RETRY, ...options.retry },
      async handler(ctx) {
        const input = ctx.input as unknown as AlertMessage | FallbackInput;
        let message: AlertMessage;
        if (input.type === 'tandem.alert-fallback') {
          // Composed once, in a step: every retry of the delivery sends the same message.
          const composed = await ctx.step('compose', async () => ({ message: await compose(input) }));
          if (!composed.message) return;
          message = composed.message;
        } else message = input;
        // One step per destination: a delivered webhook is not sent again while e-mail is retried.
        if (webhook && target) await ctx.step('webhook', () => sendWebhook(ctx, message, webhook, target));
        if (email) {
          await ctx.step('email', async () => {
            const sent = await ctx.use(email.connection).send({
              to: email.to,
              ...(email.from === undefined ? {} : { from: email.from }),
              subject: message.title,
              text: textOf(message),
            });
            return { messageId: sent.messageId, accepted: sent.accepted.length };
          });
        }
      },
    });
    this.observer = this.makeObserver();
  }

  /** Begins collecting; a worker (`backlog`) also counts the backlog. */
  start(deps: AlertDeps, worker: boolean): void {
    this.deps ??= deps;
    const groupMs = this.options.groupMs ?? DEFAULT_GROUP_MS;
    const fallbackAfterMs = groupMs + Math.max(FALLBACK_GRACE_MS, groupMs);
    this.collector ??= new AlertCollector(groupMs, {
      now: deps.now,
      logger: deps.logger,
      process: deps.process,
      consoleUrl: () => `${deps.publicUrl()}/console/`,
      commit: deps.commit,
      // Only failures are in the store to compose a message from.
      ...(this.options.failed === false
        ? {}
        : {
            fallback: (startedAt: number, since: number, messageKey: string) =>
              deps.commit(
                {
                  type: 'tandem.alert-fallback',
                  process: deps.process,
                  from: new Date(startedAt).toISOString(),
                  since: new Date(since).toISOString(),
                  messageKey,
                },
                `fallback:${messageKey}`,
                startedAt + fallbackAfterMs,
              ),
          }),
    });
    const backlog = this.options.backlog;
    if (!worker || !backlog || this.backlogTimer) return;
    const check = async () => {
      if (this.counting) return;
      this.counting = true;
      try {
        // Alert instances are not the backlog: a burst's fallback waits queued for minutes.
        const depth = (await deps.count(BACKLOG)) - (await deps.count(BACKLOG, ALERTS_INTEGRATION));
        if (!this.backlogAbove && depth >= backlog.above) {
          this.backlogAbove = true;
          this.collector?.backlog('above', depth, backlog.above);
        } else if (this.backlogAbove && depth < backlog.above * BACKLOG_HYSTERESIS) {
          this.backlogAbove = false;
          this.collector?.backlog('below', depth, backlog.above);
        }
      } catch (error) {
        deps.logger.warn({ err: error }, 'counting the backlog for alerts failed');
      } finally {
        this.counting = false;
      }
    };
    this.backlogTimer = setInterval(check, backlog.checkEveryMs ?? DEFAULT_BACKLOG_CHECK_MS);
    this.backlogTimer.unref();
    void check();
  }

  /** Stops counting and commits the open burst (before the engine stops accepting). */
  async stop(): Promise<void> {
    if (this.backlogTimer) clearInterval(this.backlogTimer);
    this.backlogTimer = null;
    await this.collector?.stop();
  }

  /**
   * A fallback's message: none when its burst's own message was stored; else the failures for good
   * of async and scheduled instances that finished since the burst opened, read from the store and
   * grouped as a burst groups them (the failures of other processes in that time included).
   */
  private async compose(fallback: FallbackInput): Promise<AlertMessage | null> {
    const deps = this.deps;
    if (!deps) throw new Error('alerts are not started');
    const from = Date.parse(fallback.since);
    if (await this.stored(deps, fallback.messageKey, Date.parse(fallback.from))) return null;
    const integrationId = deps.durableIntegrations();
    if (integrationId.length === 0) return null;
    const now = deps.now();
    const consoleUrl = `${deps.publicUrl()}/console/`;
    const gathered: Gathered = { groups: new Map(), moreFailures: 0 };
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page: Page<Instance> = await deps.listInstances({
        status: 'failed',
        integrationId,
        limit: PAGE,
        cursor,
      });
      const failed = page.items.filter(
        (instance) =>
          instance.mode !== 'sync' &&
          instance.finishedAt !== null &&
          instance.finishedAt >= from &&
          instance.finishedAt <= now,
      );
      const steps = failed.length > 0 ? await deps.failedSteps(failed) : {};
      for (const instance of failed) {
        const connection = instance.error?.details?.connection;
        gather(
          gathered,
          {
            integrationId: instance.integrationId,
            instanceId: instance.id,
            code: instance.error?.code ?? null,
            step: steps[instance.id] ?? null,
            connection: typeof connection === 'string' ? connection : null,
            message: instance.error?.message ?? '(no message)',
          },
          instance.finishedAt ?? now,
          consoleUrl,
        );
      }
      cursor = page.nextCursor;
    } while (cursor !== null && ++pages < MAX_PAGES);
    if (gathered.groups.size === 0 && gathered.moreFailures === 0) return null;
    const body: Omit<AlertMessage, 'title'> = {
      type: 'tandem.alert',
      from: fallback.from,
      to: new Date(now).toISOString(),
      process: fallback.process,
      console: `${consoleUrl}#/errors`,
      failures: failuresOf(gathered),
      moreFailures: gathered.moreFailures,
      circuits: [],
      schedules: [],
      backlog: [],
      moreEvents: 0,
      note: STOPPED_NOTE,
    };
    return { ...body, title: `${titleOf(body)} (from a process that stopped before sending its alert)` };
  }

  /** Whether the alert instance with this key is stored (it is created after `from`). */
  private async stored(deps: AlertDeps, key: string, from: number): Promise<boolean> {
    let cursor: string | null = null;
    do {
      const page: Page<Instance> = await deps.listInstances({
        integrationId: ALERTS_INTEGRATION,
        createdAfter: from - 1,
        limit: PAGE,
        cursor,
      });
      if (page.items.some((instance) => instance.idempotencyKey === key)) return true;
      cursor = page.nextCursor;
    } while (cursor !== null);
    return false;
  }

  private makeObserver(): EngineObserver {
    const { failed = true, circuits = true, schedules = true } = this.options;
    const observer: EngineObserver = {};
    if (failed) {
      observer.finished = (instance, outcome, _ms, detail) => {
        // An alert that failed for good is on the console; alerting about it could loop.
        if (outcome !== 'failed' || instance.integrationId === ALERTS_INTEGRATION) return;
        const connection = detail?.error?.details?.connection;
        this.collector?.failed({
          integrationId: instance.integrationId,
          instanceId: instance.id,
          code: detail?.error?.code ?? null,
          step: detail?.step ?? null,
          connection: typeof connection === 'string' ? connection : null,
          message: detail?.error?.message ?? '(no message)',
        });
      };
    }
    if (circuits) observer.circuit = (connection, state) => this.collector?.circuit(connection, state);
    if (schedules) {
      observer.slot = (event) => {
        if (event.outcome !== 'skipped' && event.outcome !== 'error') return;
        this.collector?.missedSlot({
          integrationId: event.integrationId,
          reason: event.outcome,
          slotAt: new Date(event.slotAt).toISOString(),
          ...(event.instanceId === undefined ? {} : { instanceId: event.instanceId }),
        });
      };
      observer.slotsMissed = (event) =>
        this.collector?.missedSlot({
          integrationId: event.integrationId,
          reason: 'not-fired',
          slotAt: new Date(event.firstSlotAt).toISOString(),
          ...(event.lastSlotAt === event.firstSlotAt
            ? {}
            : { untilAt: new Date(event.lastSlotAt).toISOString() }),
        });
    }
    return observer;
  }
}
