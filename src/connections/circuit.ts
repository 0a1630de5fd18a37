/** Options of a connection's circuit breaker. */
export interface CircuitOptions {
  /** Consecutive failures (connection errors, timeouts, 5xx) that open the circuit. Default 5. */
  failures?: number;
  /** How long it stays open before one probe call is let through. Default 30 s. */
  reprobeMs?: number;
}

export type CircuitState = 'closed' | 'open' | 'half-open';

/**
 * Per connection and per process: after N consecutive failures calls fail at once until the
 * re-probe time; then one call goes through as a probe: success closes the circuit, failure opens
 * it again. Protects a target that is down from a thundering herd of retries.
 */
export class CircuitBreaker {
  private consecutive = 0;
  private openedAt: number | null = null;
  private probing = false;
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

  /** Null when a call may proceed, else the ms until the next probe may be tried. */
  admit(now: number): number | null {
    const state = this.state(now);
    if (state === 'closed') return null;
    if (state === 'half-open' && !this.probing) {
      this.probing = true;
      return null;
    }
    // Open, or a probe already in flight: wait for the re-probe time (or a short while for the probe).
    return state === 'open' ? this.openedAt! + this.reprobeMs - now : Math.min(1_000, this.reprobeMs);
  }

  success(): void {
    this.consecutive = 0;
    this.openedAt = null;
    this.probing = false;
  }

  failure(now: number): void {
    this.consecutive++;
    if (this.probing || this.consecutive >= this.failureThreshold) {
      this.openedAt = now;
      this.probing = false;
    }
  }

  /** A call that ended without saying anything about the target's health (e.g. a 4xx). */
  neutral(): void {
    if (this.probing) this.success();
  }
}
