/**
 * Gathers alert-worthy events into bursts: the first event opens one, and `groupMs` later
 * everything seen since is committed as one message (an instance of the alerts integration), so
 * that an outage failing 200 instances is one message, not 200. Memory is bounded: a burst lists a
 * fixed number of groups and events and counts the rest.
 *
 * A burst lives in this process's memory until it closes: a crash in between loses the message,
 * not the failures (they stay in the store and on the console's errors page). Once committed, a
 * message is durable work like any instance: retried until delivered.
 */
import type { Logger } from 'pino';
import {
  type AlertMessage,
  type BacklogChange,
  type CircuitChange,
  type FailureGroup,
  groupKey,
  type MissedSlot,
  titleOf,
} from './message.js';

/** Groups of failures listed in one message; failures of further groups are counted. */
const MAX_GROUPS = 20;
/** Circuit, schedule and backlog events listed in one message; further ones are counted. */
const MAX_EVENTS = 50;
/** Distinct example messages per group. */
const EXAMPLES = 3;

export interface Failure {
  integrationId: string;
  instanceId: string;
  code: string | null;
  step: string | null;
  connection: string | null;
  message: string;
}

export interface CollectorDeps {
  /** The engine's clock. */
  now(): number;
  logger: Logger;
  /** Names the process in messages and keys (the engine's worker id). */
  process: string;
  /** The console's address (`https://tandem.example.com/console/`). */
  consoleUrl(): string;
  /** Commits one message as durable work; the key makes a repeated commit of it a no-op. */
  commit(message: AlertMessage, idempotencyKey: string): Promise<void>;
}

interface Burst {
  startedAt: number;
  groups: Map<string, FailureGroup & { seen: Map<string, FailureGroup['examples'][number]> }>;
  moreFailures: number;
  circuits: CircuitChange[];
  schedules: MissedSlot[];
  backlog: BacklogChange[];
  moreEvents: number;
}

/** The same message but for its numbers (a probe's delay, a count): one example for all of them. */
const exampleKey = (message: string) => message.replace(/\d+/g, '#');
const iso = (ms: number) => new Date(ms).toISOString();

export class AlertCollector {
  private burst: Burst | null = null;
  private timer: NodeJS.Timeout | null = null;
  /** Commits under way (and their retries), awaited by `stop()`. */
  private readonly commits = new Set<Promise<void>>();
  /** Messages the store refused, waiting to be committed again. */
  private readonly retries = new Map<string, { message: AlertMessage; timer: NodeJS.Timeout }>();
  private sequence = 0;
  private stopped = false;

  constructor(
    private readonly groupMs: number,
    private readonly deps: CollectorDeps,
  ) {}

  failed(failure: Failure): void {
    const burst = this.open();
    const at = this.deps.now();
    const key = groupKey(failure.integrationId, failure.code, failure.step, failure.connection);
    let group = burst.groups.get(key);
    if (!group) {
      if (burst.groups.size >= MAX_GROUPS) {
        burst.moreFailures++;
        return;
      }
      group = {
        integrationId: failure.integrationId,
        code: failure.code,
        step: failure.step,
        connection: failure.connection,
        count: 0,
        firstAt: iso(at),
        latestAt: iso(at),
        examples: [],
        link: `${this.deps.consoleUrl()}#/errors?group=${encodeURIComponent(key)}`,
        seen: new Map(),
      };
      burst.groups.set(key, group);
    }
    group.count++;
    group.latestAt = iso(at);
    const example = group.seen.get(exampleKey(failure.message));
    if (example) example.count++;
    else if (group.seen.size < EXAMPLES) {
      group.seen.set(exampleKey(failure.message), {
        message: failure.message,
        instanceId: failure.instanceId,
        count: 1,
      });
    }
  }

  circuit(connection: string, state: 'open' | 'closed'): void {
    const burst = this.open();
    if (this.full(burst)) return;
    burst.circuits.push({
      connection,
      state,
      at: iso(this.deps.now()),
      link: `${this.deps.consoleUrl()}#/connections`,
    });
  }

  missedSlot(slot: Omit<MissedSlot, 'link'>): void {
    const burst = this.open();
    if (this.full(burst)) return;
    burst.schedules.push({ ...slot, link: `${this.deps.consoleUrl()}#/schedules` });
  }

  backlog(state: 'above' | 'below', depth: number, threshold: number): void {
    const burst = this.open();
    if (this.full(burst)) return;
    burst.backlog.push({
      state,
      depth,
      threshold,
      at: iso(this.deps.now()),
      link: `${this.deps.consoleUrl()}#/instances?status=queued`,
    });
  }

  /** Closes the open burst now and waits for every commit under way (at shutdown). */
  async stop(): Promise<void> {
    this.close();
    this.stopped = true;
    for (const [key, { message, timer }] of this.retries) {
      clearTimeout(timer);
      this.retries.delete(key);
      this.commit(message, key);
    }
    while (this.commits.size > 0) await Promise.all([...this.commits]);
  }

  private full(burst: Burst): boolean {
    if (burst.circuits.length + burst.schedules.length + burst.backlog.length < MAX_EVENTS) return false;
    burst.moreEvents++;
    return true;
  }

  private open(): Burst {
    if (this.burst) return this.burst;
    this.burst = {
      startedAt: this.deps.now(),
      groups: new Map(),
      moreFailures: 0,
      circuits: [],
      schedules: [],
      backlog: [],
      moreEvents: 0,
    };
    if (!this.stopped) {
      this.timer = setTimeout(() => this.close(), this.groupMs);
      // A pending alert must not keep a process alive that has nothing else to do; stop() sends it.
      this.timer.unref();
    }
    return this.burst;
  }

  /** Turns the open burst into a message and commits it. */
  private close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const burst = this.burst;
    this.burst = null;
    if (!burst) return;
    const body: Omit<AlertMessage, 'title'> = {
      type: 'tandem.alert',
      from: iso(burst.startedAt),
      to: iso(this.deps.now()),
      process: this.deps.process,
      console: `${this.deps.consoleUrl()}#/errors`,
      failures: [...burst.groups.values()].map(({ seen, ...group }) => ({
        ...group,
        examples: [...seen.values()],
      })),
      moreFailures: burst.moreFailures,
      circuits: burst.circuits,
      schedules: burst.schedules,
      backlog: burst.backlog,
      moreEvents: burst.moreEvents,
    };
    const message: AlertMessage = { ...body, title: titleOf(body) } as AlertMessage;
    this.commit(message, `${this.deps.process}:${burst.startedAt}:${++this.sequence}`);
  }

  /** Commits a message, again after `groupMs` while the store refuses (once more at stop). */
  private commit(message: AlertMessage, key: string): void {
    const done = this.deps.commit(message, key).then(
      () => {},
      (error: unknown) => {
        if (this.stopped) {
          this.deps.logger.error({ err: error, alert: message.title }, 'an alert could not be stored');
          return;
        }
        this.deps.logger.warn({ err: error }, 'storing an alert failed; trying again');
        const timer = setTimeout(() => {
          this.retries.delete(key);
          this.commit(message, key);
        }, this.groupMs);
        timer.unref();
        this.retries.set(key, { message, timer });
      },
    );
    this.commits.add(done);
    void done.finally(() => this.commits.delete(done));
  }
}
