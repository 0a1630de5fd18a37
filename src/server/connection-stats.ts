import type { Engine } from '../engine/engine.js';

/** How many recent call durations are kept per connection for the percentiles. */
const RECENT = 512;

interface Tally {
  calls: number;
  failures: number;
  lastStatus: number | null;
  lastCallAt: number | null;
  durations: number[];
  next: number;
}

/**
 * Call statistics per connection since the server started, from the connections' own watchers:
 * counts, failures (no answer, a status of 400 and above, a failed operation) and percentiles of
 * recent durations.
 */
export class ConnectionStats {
  private readonly tallies = new Map<string, Tally>();

  constructor(private readonly engine: Engine) {
    for (const connection of engine.connections.values()) {
      const tally: Tally = {
        calls: 0,
        failures: 0,
        lastStatus: null,
        lastCallAt: null,
        durations: [],
        next: 0,
      };
      this.tallies.set(connection.id, tally);
      connection.watch(({ ok, status, durationMs }) => {
        tally.calls++;
        if (!ok) tally.failures++;
        tally.lastStatus = status;
        tally.lastCallAt = engine.clock.now();
        tally.durations[tally.next] = durationMs;
        tally.next = (tally.next + 1) % RECENT;
      });
    }
  }

  list() {
    const now = this.engine.clock.now();
    return [...this.engine.connections.values()].map((connection) => {
      const tally = this.tallies.get(connection.id)!;
      const sorted = [...tally.durations].sort((a, b) => a - b);
      return {
        id: connection.id,
        type: connection.type,
        baseUrl: connection.target,
        circuit: connection.circuitState(now),
        calls: tally.calls,
        failures: tally.failures,
        failureRate: tally.calls === 0 ? null : tally.failures / tally.calls,
        p50: rank(sorted, 0.5),
        p95: rank(sorted, 0.95),
        p99: rank(sorted, 0.99),
        lastStatus: tally.lastStatus,
        lastCallAt: tally.lastCallAt,
      };
    });
  }
}

/** Nearest rank of sorted values: the smallest with at least q of them at or below it; null for none. */
export function rank(sorted: number[], q: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)]!;
}
