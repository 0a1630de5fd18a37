/**
 * Alerts, wired into an engine: an observer that hears of failures, circuits and missed slots, a
 * backlog count on workers, the collector that makes bursts into messages, and the internal async
 * integration `tandem.alerts` whose instances deliver them. Delivery is Tandem's own durable work:
 * a message survives restarts, is retried with backoff while its receiver is down, and shows in the
 * console like any instance. The engine hands in what it knows through {@link AlertDeps}, so this
 * module never imports the engine.
 */
import type { Logger } from 'pino';
import { HttpConnection } from '../connections/http.js';
import { type AnyIntegration, defineIntegration } from '../define/integration.js';
import type { RetryPolicy } from '../define/retry.js';
import type { EngineObserver } from '../engine/observer.js';
import { DUE, WAITING } from '../lifecycle/statuses.js';
import type { InstanceStatus } from '../model.js';
import { AlertCollector } from './collector.js';
import { type AlertMessage, textOf } from './message.js';
import { ALERTS_INTEGRATION, type AlertsOptions, checkAlerts } from './options.js';
import { sendWebhook, webhookTarget } from './webhook.js';

export { ALERTS_INTEGRATION } from './options.js';

const DEFAULT_GROUP_MS = 60_000;
const DEFAULT_BACKLOG_CHECK_MS = 60_000;
/** Back under the threshold only below this share of it, so that a backlog hovering at it does not flap. */
const BACKLOG_HYSTERESIS = 0.9;
/** Retried for about 35 days: a message is delivered once its receiver is back, or seen failed. */
const DEFAULT_RETRY: RetryPolicy = { maxAttempts: 10_000, initialDelayMs: 1_000, maxDelayMs: 300_000 };

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
  /** Commits one message as an instance of the alerts integration (idempotent by key). */
  commit(input: AlertMessage, idempotencyKey: string): Promise<void>;
  /** Instances in the given statuses. */
  count(statuses: InstanceStatus[]): Promise<number>;
}

export class Alerts {
  /** The internal integration whose instances deliver the messages; registered with the engine's own. */
  readonly integration: AnyIntegration;
  /** Hears what the engine does; registered with its observers. */
  readonly observer: EngineObserver;
  private collector: AlertCollector | null = null;
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
    this.integration = defineIntegration({
      id: ALERTS_INTEGRATION,
      mode: 'async',
      description:
        'Delivers alerts (the config’s `alerts`): one instance per message, retried until delivered.',
      retry: { ...DEFAULT_RETRY, ...options.retry },
      async handler(ctx) {
        const message = ctx.input as unknown as AlertMessage;
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
    this.collector ??= new AlertCollector(this.options.groupMs ?? DEFAULT_GROUP_MS, {
      now: deps.now,
      logger: deps.logger,
      process: deps.process,
      consoleUrl: () => `${deps.publicUrl()}/console/`,
      commit: deps.commit,
    });
    const backlog = this.options.backlog;
    if (!worker || !backlog || this.backlogTimer) return;
    const check = async () => {
      if (this.counting) return;
      this.counting = true;
      try {
        const depth = await deps.count(BACKLOG);
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
