/**
 * Concurrency and rate limits of a connection, and their variants shared by the processes of one
 * store: the per-process ones are plain counters; the shared ones lease slots and reserve rate
 * slots in the store in batches, so a call rarely waits on a round trip.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { LimitStore } from '../store/store.js';
import { CircuitBreaker, type CircuitOptions } from './circuit.js';

/** At most `max` calls in flight; the rest wait in order. */
export class ConcurrencyLimit implements Slots {
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  constructor(readonly max: number) {}

  /** A release function at once when a slot is free (the common case, without a promise), else null. */
  tryAcquire(): (() => void) | null {
    if (this.active >= this.max) return null;
    this.active++;
    return this.releaser();
  }

  async acquire(signal?: AbortSignal): Promise<() => void> {
    if (this.active >= this.max) {
      await new Promise<void>((resolve, reject) => {
        const go = () => {
          signal?.removeEventListener('abort', abort);
          resolve();
        };
        const abort = () => {
          const index = this.waiting.indexOf(go);
          if (index >= 0) this.waiting.splice(index, 1);
          reject(signal!.reason);
        };
        this.waiting.push(go);
        signal?.addEventListener('abort', abort, { once: true });
      });
    }
    this.active++;
    return this.releaser();
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.active--;
      this.waiting.shift()?.();
    };
  }
}

/** Spaces calls at least 1/rate seconds apart (no bursts), so a target's rate limit holds. */
export class RateLimit implements Pace {
  private next = 0;
  private readonly interval: number;
  constructor(perSecond: number) {
    this.interval = 1_000 / perSecond;
  }

  async wait(signal?: AbortSignal): Promise<void> {
    const now = performance.now();
    const at = Math.max(now, this.next);
    this.next = at + this.interval;
    const delay = at - now;
    if (delay <= 0) return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        signal?.removeEventListener('abort', abort);
        resolve();
      }, delay);
      const abort = () => {
        clearTimeout(timer);
        reject(signal!.reason);
      };
      signal?.addEventListener('abort', abort, { once: true });
    });
  }
}

// ── Limits shared by the processes of one store ─────────────────────────────────────────────────

/** What a call waits on for a concurrency slot: the per-process {@link ConcurrencyLimit} or the shared one. */
export interface Slots {
  tryAcquire(): (() => void) | null;
  acquire(signal?: AbortSignal): Promise<() => void>;
}

/** What a call waits on for its turn under the rate: the per-process {@link RateLimit} or the shared one. */
export interface Pace {
  wait(signal?: AbortSignal): Promise<void>;
}

/** A leased rate slot later than this is dropped rather than used: a late one would make a burst. */
const LATE_MS = 250;
/** A concurrency slot goes back to the store after this long in one process, so others get their turn. */
const HOLD_MS = 500;
/** A concurrency slot's lease: a crashed process's slots are free again after this. Renewed at a third. */
const SLOT_LEASE_MS = 15_000;
/** How often a process waiting for a slot that no process gives back asks again. */
const SLOT_POLL_MS = 25;

interface Waiter<T> {
  resolve(value: T): void;
  reject(reason: unknown): void;
}

/** Queues a waiter whose abort takes it out of `queue`. */
function waitIn<T>(queue: Waiter<T>[], signal: AbortSignal | undefined): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const abort = () => {
      const index = queue.indexOf(waiter);
      if (index >= 0) queue.splice(index, 1);
      reject(signal!.reason);
    };
    const waiter: Waiter<T> = {
      resolve: (value) => {
        signal?.removeEventListener('abort', abort);
        resolve(value);
      },
      reject: (reason) => {
        signal?.removeEventListener('abort', abort);
        reject(reason);
      },
    };
    queue.push(waiter);
    signal?.addEventListener('abort', abort, { once: true });
  });
}

/**
 * The rate over all processes: slots 1/rate apart are reserved on one timeline in the store, in
 * batches of about a tenth of a second's worth, so a process asks the store a few times a second at
 * most however many calls it makes. Each call then waits locally for its slot's time.
 */
class SharedRate implements Pace {
  private readonly interval: number;
  private readonly batch: number;
  /** Reserved slots not yet given to a call, as local times. */
  private readonly slots: number[] = [];
  private readonly queue: Waiter<number>[] = [];
  private taking = false;

  constructor(
    private readonly store: LimitStore,
    private readonly connection: string,
    perSecond: number,
  ) {
    this.interval = 1_000 / perSecond;
    this.batch = Math.min(100, Math.max(1, Math.ceil(perSecond / 10)));
  }

  async wait(signal?: AbortSignal): Promise<void> {
    const waiting = waitIn(this.queue, signal);
    this.pump();
    const delay = (await waiting) - Date.now();
    if (delay <= 0) return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        signal?.removeEventListener('abort', abort);
        resolve();
      }, delay);
      const abort = () => {
        clearTimeout(timer);
        reject(signal!.reason);
      };
      signal?.addEventListener('abort', abort, { once: true });
    });
  }

  private pump(): void {
    const now = Date.now();
    while (this.queue.length > 0 && this.slots.length > 0) {
      const at = this.slots.shift()!;
      if (at < now - LATE_MS) continue;
      this.queue.shift()!.resolve(at);
    }
    if (this.queue.length > 0 && !this.taking) void this.take(Math.min(this.queue.length, this.batch));
  }

  private async take(count: number): Promise<void> {
    this.taking = true;
    try {
      const { first, now } = await this.store.takeRateSlots(this.connection, this.interval, count);
      const offset = now - Date.now();
      for (let i = 0; i < count; i++) this.slots.push(first - offset + i * this.interval);
    } catch (error) {
      for (const waiter of this.queue.splice(0)) waiter.reject(error);
    } finally {
      this.taking = false;
    }
    this.pump();
  }
}

/**
 * Concurrency over all processes: the store holds `max` slot rows, leased by processes. A process
 * keeps a leased slot for the calls that follow (no store round trip per call) and gives it back
 * when idle or after {@link HOLD_MS}, so that waiting processes get their turn; leases are renewed
 * while held, and a crashed process's slots are free again when their lease expires.
 */
class SharedConcurrency implements Slots {
  /** Slots this process holds, with when each was leased. */
  private readonly held = new Map<number, number>();
  /** Held slots not in use. */
  private readonly free: number[] = [];
  private readonly queue: Waiter<() => void>[] = [];
  private readonly returning: number[] = [];
  private leasing = false;
  private closed = false;
  private readonly renewTimer: NodeJS.Timeout;
  private idleTimer: NodeJS.Timeout | null = null;
  private pollTimer: NodeJS.Timeout | null = null;
  private flushTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly store: LimitStore,
    private readonly connection: string,
    private readonly owner: string,
    readonly max: number,
    private readonly onError: (error: unknown) => void,
  ) {
    this.renewTimer = setInterval(() => void this.renew(), SLOT_LEASE_MS / 3);
    this.renewTimer.unref();
  }

  tryAcquire(): (() => void) | null {
    const slot = this.free.pop();
    return slot === undefined ? null : this.releaser(slot);
  }

  acquire(signal?: AbortSignal): Promise<() => void> {
    const release = this.tryAcquire();
    if (release) return Promise.resolve(release);
    if (this.closed)
      return Promise.reject(new Error(`connection ${this.connection}: its shared limits were closed`));
    const waiting = waitIn(this.queue, signal);
    this.fill();
    return waiting;
  }

  private releaser(slot: number): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.put(slot);
    };
  }

  private put(slot: number): void {
    const leasedAt = this.held.get(slot);
    if (leasedAt === undefined) return; // lost (its lease was not renewed in time)
    if (this.closed || Date.now() - leasedAt >= HOLD_MS) {
      this.giveBack(slot);
      this.fill();
      return;
    }
    const waiter = this.queue.shift();
    if (waiter) {
      waiter.resolve(this.releaser(slot));
      return;
    }
    this.free.push(slot);
    this.idleTimer ??= setTimeout(() => {
      this.idleTimer = null;
      for (const idle of this.free.splice(0)) this.giveBack(idle);
    }, HOLD_MS);
    this.idleTimer.unref();
  }

  /** Returns a slot to the store (batched with others given back in the same few ms). */
  private giveBack(slot: number): void {
    this.held.delete(slot);
    this.returning.push(slot);
    this.flushTimer ??= setTimeout(() => void this.flush(), 1);
  }

  private async flush(): Promise<void> {
    this.flushTimer = null;
    const slots = this.returning.splice(0);
    if (slots.length === 0) return;
    try {
      await this.store.releaseSlots(this.connection, this.owner, slots);
    } catch (error) {
      this.onError(error); // the leases expire on their own
    }
  }

  private fill(): void {
    if (this.leasing || this.closed || this.queue.length === 0 || this.pollTimer) return;
    this.leasing = true;
    const want = Math.min(this.queue.length, this.max);
    this.store.leaseSlots(this.connection, this.owner, this.max, want, SLOT_LEASE_MS).then(
      (slots) => {
        this.leasing = false;
        const now = Date.now();
        for (const slot of slots) {
          this.held.set(slot, now);
          const waiter = this.queue.shift();
          if (waiter) waiter.resolve(this.releaser(slot));
          else this.put(slot);
        }
        if (this.queue.length === 0) return;
        if (slots.length > 0) {
          this.fill();
          return;
        }
        // None free: ask again shortly (jittered, so waiting processes do not ask in step).
        this.pollTimer = setTimeout(
          () => {
            this.pollTimer = null;
            this.fill();
          },
          SLOT_POLL_MS * (0.5 + Math.random()),
        );
      },
      (error: unknown) => {
        this.leasing = false;
        for (const waiter of this.queue.splice(0)) waiter.reject(error);
      },
    );
  }

  private async renew(): Promise<void> {
    if (this.held.size === 0) return;
    const slots = [...this.held.keys()];
    try {
      const kept = new Set(await this.store.renewSlots(this.connection, this.owner, slots, SLOT_LEASE_MS));
      for (const slot of slots) {
        if (kept.has(slot)) continue;
        this.held.delete(slot);
        const index = this.free.indexOf(slot);
        if (index >= 0) this.free.splice(index, 1);
      }
    } catch (error) {
      this.onError(error);
    }
  }

  /** Gives every held slot back (slots in use go back as their calls end) and stops the timers. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.renewTimer);
    for (const timer of [this.idleTimer, this.pollTimer, this.flushTimer]) if (timer) clearTimeout(timer);
    for (const waiter of this.queue.splice(0)) waiter.reject(new Error('connection closed'));
    for (const slot of this.free.splice(0)) this.giveBack(slot);
    await this.flush();
  }
}

/** How often at most a process reads the circuit state other processes wrote. */
const CIRCUIT_READ_MS = 250;

/**
 * A circuit breaker whose openings and closings all processes share: a process that opens it (or
 * whose probe fails) writes when; one whose probe succeeds writes closed; every process reads the
 * shared state at most every {@link CIRCUIT_READ_MS} ms (the call that finds it stale waits for the
 * read; the others do not) and takes it over. Each process may send one probe when the re-probe time has come.
 */
class SharedCircuitBreaker extends CircuitBreaker {
  private lastRead = Number.NEGATIVE_INFINITY;
  private chain: Promise<unknown> = Promise.resolve();
  private pending = 0;
  private reading: Promise<void> | null = null;

  constructor(
    private readonly store: LimitStore,
    private readonly connection: string,
    options: CircuitOptions | undefined,
    private readonly onError: (error: unknown) => void,
  ) {
    super(options);
  }

  /** A read of the shared state when the last one is older than {@link CIRCUIT_READ_MS}. */
  override due(now: number): Promise<void> | null {
    if (this.reading) return this.reading;
    if (now - this.lastRead < CIRCUIT_READ_MS) return null;
    this.lastRead = now;
    const reading = this.enqueue(async () => {
      const { openedAt, now: storeNow } = await this.store.readCircuit(this.connection);
      // A write queued after this read knows better.
      if (this.pending > 1) return;
      // Onto the clock the breaker is given (the engine's, which a test may move by hand).
      this.adopt(openedAt === null ? null : openedAt - storeNow + now);
    });
    this.reading = reading.finally(() => {
      this.reading = null;
    });
    return this.reading;
  }

  override success(): void {
    const wasOpen = this.openedSince() !== null;
    super.success();
    if (wasOpen) this.enqueue(() => this.store.writeCircuit(this.connection, false));
  }

  override failure(now: number): void {
    const before = this.openedSince();
    super.failure(now);
    if (this.openedSince() !== before) this.enqueue(() => this.store.writeCircuit(this.connection, true));
  }

  override neutral(): void {
    const wasOpen = this.openedSince() !== null;
    super.neutral();
    if (wasOpen && this.openedSince() === null)
      this.enqueue(() => this.store.writeCircuit(this.connection, false));
  }

  /** Settles when every read and write queued so far is done (for tests and shutdown). */
  settled(): Promise<void> {
    return this.chain.then(() => undefined);
  }

  /** Runs store reads and writes one after another; a failed one is reported, never thrown. */
  private enqueue(work: () => Promise<unknown>): Promise<void> {
    this.pending++;
    const done = this.chain
      .then(work)
      .catch(this.onError)
      .finally(() => {
        this.pending--;
      })
      .then(() => undefined);
    this.chain = done;
    return done;
  }
}

/** A connection's limits and circuit: per process, or shared (then `close` gives back what it holds). */
export interface LimitSet {
  slots: Slots;
  rate: Pace | null;
  circuit: CircuitBreaker | null;
}

/**
 * Makes a connection's limits shared by the processes of `store`, and returns them with their undo:
 * `install` puts a set in place; the undo gives back the slots held and puts the per-process set
 * back (unless something else was installed since).
 */
export function shareLimits(
  store: LimitStore,
  connection: string,
  options: { max: number; ratePerSecond?: number | undefined; circuit?: CircuitOptions | false | undefined },
  current: LimitSet,
  install: (set: LimitSet) => void,
  onError: (error: unknown) => void,
): () => Promise<void> {
  const owner = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  const slots = new SharedConcurrency(store, connection, owner, options.max, onError);
  const shared: LimitSet = {
    slots,
    rate: options.ratePerSecond ? new SharedRate(store, connection, options.ratePerSecond) : null,
    circuit:
      options.circuit === false
        ? null
        : new SharedCircuitBreaker(store, connection, options.circuit, onError),
  };
  install(shared);
  let installed = true;
  return async () => {
    if (!installed) return;
    installed = false;
    install(current);
    await slots.close();
    if (shared.circuit instanceof SharedCircuitBreaker) await shared.circuit.settled();
  };
}
