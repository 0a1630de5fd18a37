/**
 * Hooks into what the engine does, for metrics, logs and other in-process watchers: one place that
 * hears of every attempt's end, refused trigger request, circuit change and fired cron slot.
 */
import type { Connection } from '../connections/connection.js';
import type { TandemError } from '../errors.js';
import type { ErrorInfo, InstanceWork, Mode } from '../model.js';
import type { SlotEvent } from './scheduler.js';

/** What ended an attempt that did not succeed. */
export interface FinishDetail {
  error?: ErrorInfo;
  /** The step whose error ended the attempt, when one did. */
  step?: string;
  /** When the next attempt is due (a retry), or the wait ends (null: no timeout). */
  runAt?: number | null;
  /** The wait the instance stopped at (outcome `wait`). */
  waiting?: string;
}

/** Every hook is optional and must not throw (a throwing observer is logged and ignored). */
export interface EngineObserver {
  /** Instances newly committed (idempotent repeats not counted). */
  accepted?(integrationId: string, mode: Mode, count: number): void;
  /** An attempt began; `takenOver` when another worker's lease had expired. */
  started?(instance: InstanceWork, takenOver: boolean): void;
  /** An attempt ended and its outcome was stored; `attemptMs` is that attempt's own time. */
  finished?(
    instance: InstanceWork,
    outcome: 'succeeded' | 'failed' | 'retry' | 'wait',
    attemptMs: number,
    detail?: FinishDetail,
  ): void;
  /** A sync instance answered its caller. */
  syncFinished?(integrationId: string, outcome: 'succeeded' | 'failed', durationMs: number): void;
  /** A trigger request was refused before anything was stored (bad input, credentials, size …). */
  refused?(integrationId: string, error: TandemError): void;
  /** A connection's circuit opened (calls fail at once) or closed again (its probe succeeded). */
  circuit?(connectionId: string, state: 'open' | 'closed'): void;
  /** A cron slot this process handled: fired, skipped, taken by another process, or failed. */
  slot?(event: SlotEvent): void;
}

/**
 * Tells `observer` when a connection's circuit opens or closes. Checked after each call's outcome
 * has been counted (the connection tells watchers just before it counts), so the breaker itself
 * needs no listener. Returns the unsubscribe.
 */
export function watchCircuits(
  connections: Iterable<Connection>,
  observer: Pick<Required<EngineObserver>, 'circuit'>,
): () => void {
  const unsubscribes: (() => void)[] = [];
  for (const connection of connections) {
    let open = false;
    const check = () => {
      const now = connection.circuitState() !== 'closed';
      if (now === open) return;
      open = now;
      observer.circuit(connection.id, now ? 'open' : 'closed');
    };
    unsubscribes.push(connection.watch(() => queueMicrotask(check)));
  }
  return () => {
    for (const unsubscribe of unsubscribes) unsubscribe();
  };
}
