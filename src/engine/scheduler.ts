/**
 * The scheduler: fires the cron slots of scheduled integrations. Each slot is handled by one store
 * transaction (`fireSlot`) that claims a unique (integration, slot) key, so any number of processes
 * can run a scheduler on one store and every slot fires once. Timers only decide when to try.
 *
 * Slots are computed with croner in the schedule's time zone. Time comes from the engine's clock;
 * the timer is re-armed at least every minute so a moved clock is noticed.
 */
import type { Cron } from 'croner';
import type { Logger } from 'pino';
import type { AnyIntegration, ScheduledDefinition } from '../define/integration.js';
import type { Parameters } from '../define/parameters.js';
import { makeCron } from '../define/schedule.js';
import type { NewInstance, ScheduleState, SlotRecord, Store } from '../store/store.js';
import type { Clock } from './clock.js';

/** Longest sleep between checks; also bounds how late a moved clock is noticed. */
const MAX_SLEEP_MS = 60_000;

export interface SlotEvent {
  integrationId: string;
  slotAt: number;
  /** `taken`: another process (or an earlier fire) handled this slot or a later one. */
  outcome: 'fired' | 'skipped' | 'taken' | 'error';
  instanceId?: string;
  /** True for the missed slot fired at start by `catchUp: 'last'`. */
  catchUp?: boolean;
}

/** Slots of a schedule that passed without a firing: no scheduler ran then (stopped, or late). */
export interface MissedSlots {
  integrationId: string;
  firstSlotAt: number;
  /** The last slot missed (the same as the first when one was). */
  lastSlotAt: number;
}

export interface SchedulerDeps {
  store: Store;
  clock: Clock;
  logger: Logger;
  /** Builds the instance row a slot fires. */
  prepare(integration: AnyIntegration, slotAt: number): NewInstance;
  /** Called after a firing so the dispatcher looks for work at once. */
  fired(): void;
  onSlot?(event: SlotEvent): void;
  /** Told of slots that passed unfired (for alerts); a catch-up firing is not among them. */
  missed?(event: MissedSlots): void;
}

export interface ScheduleInfo {
  integrationId: string;
  cron: string;
  timezone: string;
  overlap: 'skip' | 'queue';
  catchUp: 'none' | 'last';
  /** Defaults, overlaid by stored values: what the next cron instance will see. */
  parameters: Parameters;
  /** Only the stored values. */
  storedParameters: Parameters;
  nextSlotAt: number | null;
  lastSlotAt: number | null;
  recentSlots: SlotRecord[];
}

type Scheduled = AnyIntegration & ScheduledDefinition<any>;

interface Entry {
  integration: Scheduled;
  cron: Cron;
  next: number | null;
}

export class Scheduler {
  private readonly entries: Entry[];
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private started: Promise<void> | null = null;
  private ticking: Promise<void> | null = null;

  constructor(
    integrations: Scheduled[],
    private readonly deps: SchedulerDeps,
  ) {
    this.entries = integrations.map((integration) => ({
      integration,
      cron: makeCron(integration.cron, integration.timezone),
      next: null,
    }));
  }

  /** Registers the schedules, fires missed slots (`catchUp: 'last'`), then arms the timer. */
  start(): Promise<void> {
    this.started ??= this.begin().catch((error) => {
      this.deps.logger.error({ err: error }, 'starting the scheduler failed; retrying in a minute');
      this.started = null;
      if (!this.stopped) this.arm(MAX_SLEEP_MS, () => void this.start());
    });
    return this.started;
  }

  private async begin(): Promise<void> {
    const now = this.deps.clock.now();
    for (const entry of this.entries) {
      const state = await this.deps.store.ensureSchedule(entry.integration.id, now);
      const latest = latestSlotAtOrBefore(entry.cron, now);
      // Missed: after the last handled slot, and not before the schedule first existed.
      const missedAny = latest !== null && latest >= state.createdAt && latest > (state.lastSlotAt ?? -1);
      if (missedAny) {
        const first = nextSlotAfter(entry.cron, Math.max(state.lastSlotAt ?? -1, state.createdAt - 1));
        // With catchUp 'last' the latest is fired now: only the slots before it are missed.
        const last =
          entry.integration.catchUp === 'last' ? latestSlotAtOrBefore(entry.cron, latest - 1) : latest;
        if (first !== null && last !== null && first <= last) this.reportMissed(entry, first, last);
      }
      if (entry.integration.catchUp === 'last' && missedAny) await this.fire(entry, latest, true);
      entry.next = nextSlotAfter(entry.cron, now);
    }
    if (!this.stopped) this.rearm();
  }

  /** Fires every schedule whose next slot is due now (the latest due slot, once), then re-arms. */
  tick(): Promise<void> {
    this.ticking ??= (async () => {
      try {
        if (this.started) await this.started;
        const now = this.deps.clock.now();
        for (const entry of this.entries) {
          if (entry.next === null || entry.next > now) continue;
          // When the process was late (busy, suspended), fire the latest due slot, not each one.
          const slot = latestSlotAtOrBefore(entry.cron, now) ?? entry.next;
          if (slot > entry.next) {
            const last = latestSlotAtOrBefore(entry.cron, slot - 1);
            if (last !== null && last >= entry.next) this.reportMissed(entry, entry.next, last);
          }
          await this.fire(entry, slot, false);
          entry.next = nextSlotAfter(entry.cron, Math.max(now, slot));
        }
      } finally {
        this.ticking = null;
      }
      if (!this.stopped) this.rearm();
    })();
    return this.ticking;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.started;
    await this.ticking;
  }

  private rearm(): void {
    const now = this.deps.clock.now();
    const next = Math.min(...this.entries.map((e) => e.next ?? Number.POSITIVE_INFINITY));
    if (next === Number.POSITIVE_INFINITY) return;
    this.arm(Math.min(MAX_SLEEP_MS, Math.max(0, next - now)), () => void this.tick());
  }

  private arm(delay: number, run: () => void): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      run();
    }, delay);
    // The dispatcher's poll keeps a running engine's process alive; the scheduler should not on its own.
    this.timer.unref();
  }

  private reportMissed(entry: Entry, firstSlotAt: number, lastSlotAt: number): void {
    try {
      this.deps.missed?.({ integrationId: entry.integration.id, firstSlotAt, lastSlotAt });
    } catch (error) {
      this.deps.logger.warn({ err: error }, 'a missed-slot watcher threw');
    }
  }

  private async fire(entry: Entry, slotAt: number, catchUp: boolean): Promise<void> {
    const { integration } = entry;
    const event: SlotEvent = { integrationId: integration.id, slotAt, outcome: 'error' };
    if (catchUp) event.catchUp = true;
    try {
      const outcome = await this.deps.store.fireSlot({
        integrationId: integration.id,
        slotAt,
        overlap: integration.overlap ?? 'skip',
        instance: this.deps.prepare(integration, slotAt),
        now: this.deps.clock.now(),
      });
      event.outcome = outcome.outcome;
      if (outcome.outcome === 'fired') {
        event.instanceId = outcome.instanceId;
        this.deps.fired();
      } else if (outcome.outcome === 'skipped') {
        event.instanceId = outcome.activeInstanceId;
        this.deps.logger.info(
          {
            integrationId: integration.id,
            slotAt: new Date(slotAt).toISOString(),
            active: outcome.activeInstanceId,
          },
          'slot skipped: an instance of the schedule is still active (overlap: skip)',
        );
      }
    } catch (error) {
      this.deps.logger.error({ err: error, integrationId: integration.id, slotAt }, 'firing a slot failed');
    }
    this.deps.onSlot?.(event);
  }

  /** A schedule's state for the API and console. */
  static describe(
    integration: ScheduledDefinition<any>,
    state: ScheduleState | null,
    recentSlots: SlotRecord[],
    now: number,
  ): ScheduleInfo {
    const stored = state?.parameters ?? {};
    return {
      integrationId: integration.id,
      cron: integration.cron,
      timezone: integration.timezone ?? 'UTC',
      overlap: integration.overlap ?? 'skip',
      catchUp: integration.catchUp ?? 'none',
      parameters: { ...(integration.parameters ?? {}), ...stored },
      storedParameters: stored,
      nextSlotAt: nextSlotAfter(makeCron(integration.cron, integration.timezone), now),
      lastSlotAt: state?.lastSlotAt ?? null,
      recentSlots,
    };
  }
}

/** The first slot strictly after `time`. */
export function nextSlotAfter(cron: Cron, time: number): number | null {
  return cron.nextRun(new Date(time))?.getTime() ?? null;
}

/** The latest slot at or before `time` (croner's previousRuns is exclusive of the exact instant). */
export function latestSlotAtOrBefore(cron: Cron, time: number): number | null {
  return cron.previousRuns(1, new Date(time + 1))[0]?.getTime() ?? null;
}
