/**
 * Gathers alert-worthy events into bursts: the first event opens one, and `groupMs` later
 * everything seen since is committed as one message (an instance of the alerts integration), so
 * that an outage failing 200 instances is one message, not 200. Memory is bounded: a burst lists a
 * fixed number of groups and events and counts the rest.
 *
 * A burst lives in this process's memory until it closes. So that a crash in between does not leave
 * its failures unalerted, opening a burst first commits a fallback instance, due a while after the
 * burst should have closed: it sends nothing when the burst's message was stored, and otherwise
 * composes one from the failures in the store. Once committed, a message is durable work like any
 * instance: retried until delivered.
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
/**
 * A failure is heard a little after it finished (once its attempt's end is committed): a fallback
 * looks for failures from this long before its burst opened, but not before the previous burst closed.
 */
const HEARD_AFTER_MS = 5_000;

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
  /**
   * Commits the fallback of a burst that opened at `startedAt`, whose failures finished after
   * `since`, and whose message will have the key `messageKey` (absent: no fallback).
   */
  fallback?(startedAt: number, since: number, messageKey: string): Promise<void>;
}

/** Failures gathered into groups, the errors page's way, with a bound on the groups listed. */
export interface Gathered {
  groups: Map<string, FailureGroup & { seen: Map<string, FailureGroup['examples'][number]> }>;
  moreFailures: number;
}

interface Burst extends Gathered {
  startedAt: number;
  /** The idempotency key of the burst's message (its fallback names it). */
  key: string;
  circuits: CircuitChange[];
  schedules: MissedSlot[];
  backlog: BacklogChange[];
  moreEvents: number;
}

/** The same message but for its numbers (a probe's delay, a count): one example for all of them. */
const exampleKey = (message: string) => message.replace(/\d+/g, '#');
const iso = (ms: number) => new Date(ms).toISOString();

/** Adds one failure (at `at`) to its group; a failure beyond the groups listed is counted. */
export function gather(target: Gathered, failure: Failure, at: number, consoleUrl: string): void {
  const key = groupKey(failure.integrationId, failure.code, failure.step, failure.connection);
  let group = target.groups.get(key);
  if (!group) {
    if (target.groups.size >= MAX_GROUPS) {
      target.moreFailures++;
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
      link: `${consoleUrl}#/errors?group=${encodeURIComponent(key)}`,
      seen: new Map(),
    };
    target.groups.set(key, group);
  }
  group.count++;
  if (at < Date.parse(group.firstAt)) group.firstAt = iso(at);
  if (at > Date.parse(group.latestAt)) group.latestAt = iso(at);
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

/** The gathered groups as a message lists them. */
export function failuresOf(gathered: Gathered): FailureGroup[] {
  return [...gathered.groups.values()].map(({ seen, ...group }) => ({
    ...group,
    examples: [...seen.values()],
  }));
}

export class AlertCollector {
  private burst: Burst | null = null;
  private timer: NodeJS.Timeout | null = null;
  /** Commits under way (and their retries), awaited by `stop()`. */
  private readonly commits = new Set<Promise<void>>();
  /** Messages the store refused, waiting to be committed again. */
  private readonly retries = new Map<
    string,
    { title: string; store: () => Promise<void>; timer: NodeJS.Timeout }
  >();
  private sequence = 0;
  /** When the previous burst closed: its failures were in its message. */
  private closedAt = 0;
  private stopped = false;

  constructor(
    private readonly groupMs: number,
    private readonly deps: CollectorDeps,
  ) {}

  failed(failure: Failure): void {
    gather(this.open(), failure, this.deps.now(), this.deps.consoleUrl());
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
    for (const [key, { title, store, timer }] of this.retries) {
      clearTimeout(timer);
      this.retries.delete(key);
      this.commit(key, title, store);
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
    const startedAt = this.deps.now();
    this.burst = {
      startedAt,
      key: `${this.deps.process}:${startedAt}:${++this.sequence}`,
      groups: new Map(),
      moreFailures: 0,
      circuits: [],
      schedules: [],
      backlog: [],
      moreEvents: 0,
    };
    if (!this.stopped) {
      // Stored before the burst's message can be: a crash from now on leaves the fallback to send it.
      const { fallback } = this.deps;
      if (fallback) {
        const key = this.burst.key;
        const since = Math.max(startedAt - HEARD_AFTER_MS, this.closedAt);
        this.commit(`fallback:${key}`, 'fallback', () => fallback(startedAt, since, key));
      }
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
    this.closedAt = this.deps.now();
    const body: Omit<AlertMessage, 'title'> = {
      type: 'tandem.alert',
      from: iso(burst.startedAt),
      to: iso(this.deps.now()),
      process: this.deps.process,
      console: `${this.deps.consoleUrl()}#/errors`,
      failures: failuresOf(burst),
      moreFailures: burst.moreFailures,
      circuits: burst.circuits,
      schedules: burst.schedules,
      backlog: burst.backlog,
      moreEvents: burst.moreEvents,
    };
    const message: AlertMessage = { ...body, title: titleOf(body) } as AlertMessage;
    this.commit(burst.key, message.title, () => this.deps.commit(message, burst.key));
  }

  /** Commits a message, again after `groupMs` while the store refuses (once more at stop). */
  private commit(key: string, title: string, store: () => Promise<void>): void {
    const done = store().then(
      () => {},
      (error: unknown) => {
        if (this.stopped) {
          this.deps.logger.error({ err: error, alert: title }, 'an alert could not be stored');
          return;
        }
        this.deps.logger.warn({ err: error }, 'storing an alert failed; trying again');
        const timer = setTimeout(() => {
          this.retries.delete(key);
          this.commit(key, title, store);
        }, this.groupMs);
        timer.unref();
        this.retries.set(key, { title, store, timer });
      },
    );
    this.commits.add(done);
    void done.finally(() => this.commits.delete(done));
  }
}
