/** Options of a connection's circuit breaker. */
export interface CircuitOptions {
  /** Consecutive failures (connection errors, timeouts, 5xx) that open the circuit. Default 5. */
  failures?: number;
  /** How long it stays open before one probe call is let through. Default 30 s. */
  reprobeMs?: number;
}

export type CircuitState = 'closed' | 'open' | 'half-open';

/**
 * What {@link CircuitBreaker.admit} hands a call that may proceed. The call must give it back with
 * {@link CircuitBreaker.release} however it ends (in a `finally`): the half-open circuit's one probe
 * slot is then freed even when the probe ended without an outcome (aborted by a cancel, a deadline,
 * an attempt timeout or a shutdown), instead of keeping every later call out for good.
 */
export interface CircuitPass {
  /** True for the one call let through a half-open circuit. */
  readonly probe: boolean;
}

/** The pass of every call through a closed circuit: one shared object, no allocation per call. */
const THROUGH: CircuitPass = Object.freeze({ probe: false });

/**
 * Per connection (per process, or shared by processes through the store: ./limits.ts): after N consecutive failures calls fail at once until the
 * re-probe time; then one call goes through as a probe: success closes the circuit, failure opens
 * it again, and a probe that ends with neither (aborted) lets the next call probe.
 */
export class CircuitBreaker {
  private consecutive = 0;
  private openedAt: number | null = null;
  /** The pass of the probe in flight, if any. */
  private probe: CircuitPass | null = null;
  readonly failureThreshold: number;
  readonly reprobeMs: number;

  constructor(options: CircuitOptions = {}) {
    this.failureThreshold = options.failures ?? 5;
    this.reprobeMs = options.reprobeMs ?? 30_000;
  }

  state(now: number): CircuitState {
    if (this.openedAt === null) return 'closed';
    return now >= this.openedAt + this.reprobeMs ? 'half-open' : 'open';
  }

  /**
   * A pass when a call may proceed (to be given back with {@link release}), else the ms until the
   * next probe may be tried.
   */
  admit(now: number): CircuitPass | number {
    const state = this.state(now);
    if (state === 'closed') return THROUGH;
    if (state === 'half-open' && this.probe === null) {
      this.probe = { probe: true };
      return this.probe;
    }
    // Open, or a probe already in flight: wait for the re-probe time (or a short while for the probe).
    return state === 'open' ? this.openedAt! + this.reprobeMs - now : Math.min(1_000, this.reprobeMs);
  }

  /** Gives a pass back once its call has ended, whichever way: an unsettled probe frees its slot. */
  release(pass: CircuitPass): void {
    if (this.probe === pass) this.probe = null;
  }

  success(): void {
    this.consecutive = 0;
    this.openedAt = null;
    this.probe = null;
  }

  failure(now: number): void {
    this.consecutive++;
    if (this.probe !== null || this.consecutive >= this.failureThreshold) {
      this.openedAt = now;
      this.probe = null;
    }
  }

  /**
   * A read of the state other processes share, when one is due before admitting (a shared
   * breaker, at most every few hundred ms); null otherwise, so that most calls wait on nothing.
   */
  due(_now: number): Promise<void> | null {
    return null;
  }

  /** When the circuit opened (null: closed); for a breaker shared by processes. */
  protected openedSince(): number | null {
    return this.openedAt;
  }

  /**
   * Takes over the state other processes agreed on (./limits.ts, SharedCircuitBreaker): open since
   * `openedAt` (a later opening than this process knows of), or closed by another's probe.
   */
  adopt(openedAt: number | null): void {
    if (openedAt === null) {
      if (this.openedAt !== null) {
        this.openedAt = null;
        this.consecutive = 0;
      }
    } else if (this.openedAt === null || openedAt > this.openedAt) {
      this.openedAt = openedAt;
    }
  }

  /** A call that ended without saying anything about the target's health (e.g. a 4xx). */
  neutral(): void {
    if (this.probe !== null) this.success();
  }
}
